"""SourceHash: the client's address picks the server, so a client keeps its server."""

from __future__ import annotations

import zlib
from bisect import bisect_right
from itertools import accumulate
from typing import Iterable, Sequence

from monkey_py.shared import SharedMemory

from .base import Balancer, Server


class SourceHash(Balancer):
    """CRC-32 of the client address picks the first server; the rest follow in list order.

    A server of weight ``w`` owns ``w`` of the ``sum(weights)`` hash slots (with equal
    weights: hash modulo the number of servers). CRC-32 gives every worker, and every
    restart, the same choice, which Python's salted ``hash()`` would not. When the chosen
    server is down, the client goes to the next one in list order, wrapping round.
    """

    def __init__(self, servers: Sequence[Server], shared: SharedMemory | None) -> None:
        super().__init__(servers, shared)
        # Server i owns the hash slots from bounds[i - 1] up to bounds[i].
        self.bounds = list(accumulate(server.weight for server in self.servers))

    def candidates(self, request) -> Iterable[Server]:
        address = str(request.peer[0]).encode()
        start = bisect_right(self.bounds, zlib.crc32(address) % self.bounds[-1])
        return self.servers[start:] + self.servers[:start]
