"""First-Alive: always the first server in list order that is not offline."""

from __future__ import annotations

from typing import Iterable

from .base import Balancer, Server


class FirstAlive(Balancer):
    """Every server in list order: the first one is used while it is up (active-passive).

    Weights are ignored.
    """

    def candidates(self, request) -> Iterable[Server]:
        return self.servers
