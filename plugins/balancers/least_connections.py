"""LeastConnections: the server with the fewest active connections across all workers."""

from __future__ import annotations

from typing import Iterable, Sequence

from monkey_py.shared import SharedMemory

from .base import Balancer, Server
from .counts import ConnectionCounts


class LeastConnections(Balancer):
    """All servers, least loaded first: active connections (every worker's) per weight.

    Ties go to list order. Failure falls back to the next least loaded server.
    """

    def __init__(self, servers: Sequence[Server], shared: SharedMemory | None) -> None:
        super().__init__(servers, shared)
        self.counts = ConnectionCounts(self.servers, shared)

    @classmethod
    def shared_size(cls, servers: Sequence[Server], workers: int) -> int:
        return ConnectionCounts.shared_size(servers, workers)

    def worker_started(self, index: int, workers: int) -> None:
        self.counts.worker_started(index, workers)

    def candidates(self, request) -> Iterable[Server]:
        loads = self.counts.loads()
        return sorted(self.servers, key=lambda server: loads[server.index])

    def connection_opened(self, server: Server) -> None:
        self.counts.opened(server)

    def connection_closed(self, server: Server) -> None:
        self.counts.closed(server)
