"""An example third-party monkey_py load balancer; the policy is in :mod:`.header_hash`."""

from .header_hash import HeaderHash

__all__ = ["HeaderHash"]
