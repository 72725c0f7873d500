"""Load balancers for the reverse proxy: the contract, shared memory and name lookup.

The built-in balancers live one per module and are found, like third-party ones,
through the entry-point group ``monkey_py.balancers``.
"""

from .base import Balancer, Server, SharedMemory
from .registry import installed_balancers, load_balancer, normalize

__all__ = [
    "Balancer",
    "Server",
    "SharedMemory",
    "installed_balancers",
    "load_balancer",
    "normalize",
]
