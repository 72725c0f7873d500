"""Load balancers for the reverse proxy: the contract and name lookup, with the core's
``SharedMemory`` that a balancer's state shared by the workers lives in.

The built-in balancers live one per module and are found, like third-party ones,
through the entry-point group ``monkey_py.balancers``.
"""

from monkey_py.shared import SharedMemory

from .base import Balancer, Server
from .registry import balancer_name, installed_balancers, load_balancer, normalize

__all__ = [
    "Balancer",
    "Server",
    "SharedMemory",
    "balancer_name",
    "installed_balancers",
    "load_balancer",
    "normalize",
]
