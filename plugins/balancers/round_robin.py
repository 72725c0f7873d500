"""RoundRobin: lock-free weighted rotation, exact within each worker."""

from __future__ import annotations

from typing import Iterable, Sequence

from monkey_py.shared import SharedMemory

from .base import Balancer, Server
from .rotation import Rotations


class RoundRobin(Balancer):
    """Each worker walks the smooth weighted rotation with its own counter.

    No shared memory and no lock: the rotation is exact per worker, and workers start
    spread evenly over the period so their first requests do not all go to one server.
    The rotation runs over the available servers only, so an offline server's turns are
    shared evenly by the others. On failure the proxy moves on in rotation order.
    """

    def __init__(self, servers: Sequence[Server], shared: SharedMemory | None) -> None:
        super().__init__(servers, shared)
        self.rotations = Rotations(self.servers)
        self.rotation = self.rotations.full
        self.turn = 0

    def worker_started(self, index: int, workers: int) -> None:
        self.turn = index * len(self.rotation) // workers

    def set_available(self, available: Sequence[Server]) -> None:
        super().set_available(available)
        self.rotation = self.rotations.over(self.available)

    def candidates(self, request) -> Iterable[Server]:
        turn = self.turn
        self.turn = turn + 1
        return self.rotation.order(turn)
