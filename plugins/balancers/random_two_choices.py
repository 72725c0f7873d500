"""RandomTwoChoices: the less loaded of two servers drawn at random."""

from __future__ import annotations

import random
from typing import Iterable, Sequence

from monkey_py.shared import SharedMemory

from .base import Server
from .least_connections import LeastConnections


class RandomTwoChoices(LeastConnections):
    """Power of two choices: draw two distinct available servers, try the less loaded
    one first.

    Load is counted as in LeastConnections (active connections of all workers, per
    weight); on a tie the first drawn goes first. The other drawn server comes second,
    then the rest in random order. Each worker reseeds ``self.random`` after the fork so
    workers do not draw the same sequence.
    """

    def __init__(self, servers: Sequence[Server], shared: SharedMemory | None) -> None:
        super().__init__(servers, shared)
        self.random = random.Random()

    def worker_started(self, index: int, workers: int) -> None:
        super().worker_started(index, workers)
        self.random.seed()

    def candidates(self, request) -> Iterable[Server]:
        servers = self.available
        if len(servers) == 1:
            return list(servers)
        order = self.random.sample(servers, len(servers))
        first, second = order[0], order[1]
        active = self.counts.active()
        if active[second.index] / second.weight < active[first.index] / first.weight:
            order[0], order[1] = second, first
        return order
