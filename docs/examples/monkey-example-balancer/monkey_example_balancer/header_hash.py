"""HeaderHash: requests carrying the same ``X-User`` header go to the same server."""

from __future__ import annotations

import zlib
from typing import Iterable

from monkey_py_plugins.balancers import Balancer, Server

HEADER = b"x-user"


class HeaderHash(Balancer):
    """CRC-32 of the ``X-User`` header picks the first server; the rest follow in list order.

    A request without the header gets plain list order. CRC-32 is the same in every
    worker and after every restart, unlike Python's salted ``hash()``.
    """

    def candidates(self, request) -> Iterable[Server]:
        value = request.header(HEADER)
        start = zlib.crc32(value) % len(self.servers) if value else 0
        return self.servers[start:] + self.servers[:start]
