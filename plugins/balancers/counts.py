"""Active upstream connections per server, counted across all workers in shared memory."""

from __future__ import annotations

from typing import Sequence

from monkey_py.shared import SLOT_BYTES, SharedMemory

from .base import Server


class ConnectionCounts:
    """A table of int64 counters in shared memory: one row per worker, one slot per server.

    Each worker increments and decrements only its own row, so no lock is needed (an
    aligned 8-byte store is atomic); readers add up a server's column over all rows.
    """

    def __init__(self, servers: Sequence[Server], shared: SharedMemory) -> None:
        self.servers = servers
        self.shared = shared
        self.columns = len(servers)
        self.rows = len(shared.slots) // self.columns
        self.row = 0

    @staticmethod
    def shared_size(servers: Sequence[Server], workers: int) -> int:
        """Bytes for ``workers`` rows of one counter per server."""
        return SLOT_BYTES * len(servers) * max(workers, 1)

    def worker_started(self, index: int, workers: int) -> None:
        """Use row ``index`` from now on, zeroed: a replaced worker's counts died with it."""
        if not 0 <= index < self.rows:
            raise ValueError(f"worker {index} has no row: the shared memory holds {self.rows}")
        self.row = index
        start = index * self.columns
        slots = self.shared.slots
        for slot in range(start, start + self.columns):
            slots[slot] = 0

    def opened(self, server: Server) -> None:
        self.shared.slots[self.row * self.columns + server.index] += 1

    def closed(self, server: Server) -> None:
        self.shared.slots[self.row * self.columns + server.index] -= 1

    def active(self) -> list[int]:
        """Active connections per server, summed over all workers."""
        slots = self.shared.slots
        end = self.rows * self.columns
        return [sum(slots[column:end:self.columns]) for column in range(self.columns)]

    def loads(self) -> list[float]:
        """Active connections per unit of weight, per server: lower is less loaded."""
        return [count / server.weight for count, server in zip(self.active(), self.servers)]
