"""LockingRoundRobin: one weighted rotation shared by all workers, under a lock."""

from __future__ import annotations

import logging
from typing import Iterable, Sequence

from .base import SLOT_BYTES, Balancer, Server, SharedMemory
from .rotation import Rotation

log = logging.getLogger(__name__)


class LockingRoundRobin(Balancer):
    """All workers take turns from one counter in shared memory: exact global rotation.

    The counter is read and incremented under the shared lock. A worker that dies while
    holding the lock (a few bytecodes) would stop every other worker; so a wait longer
    than ``lock_timeout`` seconds is taken as such a death, and the waiter takes the lock
    over instead of blocking its event loop for good.
    """

    lock_timeout = 0.5

    def __init__(self, servers: Sequence[Server], shared: SharedMemory | None) -> None:
        super().__init__(servers, shared)
        self.rotation = Rotation(self.servers)

    @classmethod
    def shared_size(cls, servers: Sequence[Server], workers: int) -> int:
        return SLOT_BYTES

    def take_turn(self) -> int:
        """The next turn of the global rotation: distinct across all workers."""
        lock = self.shared.lock
        slots = self.shared.slots
        if not lock.acquire(timeout=self.lock_timeout):
            log.error(
                "LockingRoundRobin: the shared lock was held for over %.1f s, presumably "
                "by a worker that died holding it; taking it over", self.lock_timeout,
            )
        turn = slots[0]
        slots[0] = turn + 1
        try:
            lock.release()
        except ValueError:
            # Another worker took the lock over from this one, thinking it dead, and has
            # released it already; at worst one turn was given out twice.
            pass
        return turn

    def candidates(self, request) -> Iterable[Server]:
        return self.rotation.order(self.take_turn())
