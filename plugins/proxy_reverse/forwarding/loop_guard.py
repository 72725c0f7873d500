"""Loop detection: when this server is one of its own upstreams.

Every request the proxy forwards carries ``Via: 1.1 monkey_py-<token>``, the token being
drawn once per server instance (kept across reloads). A request that comes back with
that mark was forwarded by this very server: it is never forwarded again but answered
``508 Loop Detected`` (two instances listing each other stop after one round trip
each). Before that can happen, a candidate upstream that is this server itself and
whose answer would be proxied again (same virtual host, an entry matching the same
target) is skipped; the next server in the list is used, or 508 when none is left.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket

LOOP_DETECTED = 508


def new_token() -> bytes:
    return secrets.token_hex(6).encode()


class LoopGuard:
    """This instance's mark, and which upstream addresses are this server itself."""

    def __init__(self, token: bytes, listens) -> None:
        self.token = b"monkey_py-" + token
        self.via = b"1.1 " + self.token
        self._listens = [(ipaddress.ip_address(l.host), l.port) for l in listens]

    def marked(self, request) -> bool:
        """True when ``request`` already passed through this server's proxy."""
        token = self.token
        for name, value in request.headers:
            if name == b"via" and token in value:
                return True
        return False

    def is_self(self, spec) -> bool:
        """True when the upstream ``spec`` is one of this server's own listeners."""
        if spec.family not in (socket.AF_INET, socket.AF_INET6):
            return False
        address = ipaddress.ip_address(spec.address[0])
        for host, port in self._listens:
            if port != spec.port:
                continue
            if host == address:
                return True
            if host.is_unspecified and host.version == address.version and (
                address.is_loopback or address.is_unspecified or _is_local(address)
            ):
                return True
        return False


def _is_local(address) -> bool:
    """True when ``address`` belongs to this machine (binding to it succeeds)."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((str(address), 0))
        except OSError:
            return False
    return True
