"""LockingRoundRobin: one weighted rotation shared by all workers, under a lock."""

from __future__ import annotations

from typing import Iterable, Sequence

from monkey_py.shared import SLOT_BYTES, SharedMemory

from .base import Balancer, Server
from .rotation import Rotations


class LockingRoundRobin(Balancer):
    """All workers take turns from one counter in shared memory: exact global rotation.

    The counter is read and incremented under the shared ``ProcessLock``, which the
    kernel frees if a worker dies holding it. Each worker reads its turn in the rotation
    over the servers it holds available, so an offline server's turns are shared evenly
    by the others.
    """

    def __init__(self, servers: Sequence[Server], shared: SharedMemory | None) -> None:
        super().__init__(servers, shared)
        self.rotations = Rotations(self.servers)
        self.rotation = self.rotations.full

    @classmethod
    def shared_size(cls, servers: Sequence[Server], workers: int) -> int:
        return SLOT_BYTES

    def set_available(self, available: Sequence[Server]) -> None:
        super().set_available(available)
        self.rotation = self.rotations.over(self.available)

    def take_turn(self) -> int:
        """The next turn of the global rotation: distinct across all workers."""
        slots = self.shared.slots
        with self.shared.lock:
            turn = slots[0]
            slots[0] = turn + 1
        return turn

    def candidates(self, request) -> Iterable[Server]:
        return self.rotation.order(self.take_turn())
