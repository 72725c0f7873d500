"""LeastConnections: the server with the fewest active connections across all workers."""

from __future__ import annotations

from typing import Iterable, Sequence

from monkey_py.shared import SharedMemory

from .base import Balancer, Server
from .counts import ConnectionCounts

# Initial passes one step apart for the workers' start: tinier than any real stride.
START_SPREAD = 1e-9


class LeastConnections(Balancer):
    """The available servers, least loaded first: active connections (every worker's)
    per unit of weight.

    Ties go round the tied servers in proportion to their weights, as nginx's
    ``least_conn`` breaks them: sequential traffic, which finds every server idle, is
    spread instead of all going to the first server. Each worker keeps a *pass* per
    server (stride scheduling): the server chosen first advances its pass by
    ``1 / weight``, and among equally loaded servers the lowest pass goes first. A
    server that was busy for a while starts again from the current pass, not from its
    old one, so it gets its share and no burst. Failure falls back to the next least
    loaded server.
    """

    def __init__(self, servers: Sequence[Server], shared: SharedMemory | None) -> None:
        super().__init__(servers, shared)
        self.counts = ConnectionCounts(self.servers, shared)
        self.passes = [0.0] * len(self.servers)
        # The pass the last chosen server started from: no pass starts below it.
        self.floor = 0.0

    @classmethod
    def shared_size(cls, servers: Sequence[Server], workers: int) -> int:
        return ConnectionCounts.shared_size(servers, workers)

    def worker_started(self, index: int, workers: int) -> None:
        self.counts.worker_started(index, workers)
        # As RoundRobin's workers, each worker's first tie goes to a different server.
        count = len(self.servers)
        start = index * count // max(workers, 1)
        self.passes = [((i - start) % count) * START_SPREAD for i in range(count)]

    def candidates(self, request) -> Iterable[Server]:
        active = self.counts.active()
        passes = self.passes
        order = sorted(self.available, key=lambda server: (
            active[server.index] / server.weight, passes[server.index]))
        first = order[0]
        start = passes[first.index]
        if start < self.floor:
            start = self.floor
        self.floor = start
        passes[first.index] = start + 1.0 / first.weight
        return order

    def connection_opened(self, server: Server) -> None:
        self.counts.opened(server)

    def connection_closed(self, server: Server) -> None:
        self.counts.closed(server)
