"""Naive: every server in list order, starting at a position the connection picks."""

from __future__ import annotations

from typing import Iterable

from .base import Balancer, Server


class Naive(Balancer):
    """Starts at the client's port modulo the number of servers, then wraps round.

    Monkey started at the connection's file descriptor; the client's port likewise stays
    the same for a keep-alive connection and varies between connections. Weights are
    ignored. A client without a port (a Unix socket) starts at the first server.
    """

    def candidates(self, request) -> Iterable[Server]:
        peer = request.peer
        port = peer[1] if len(peer) > 1 and isinstance(peer[1], int) else 0
        start = port % len(self.servers)
        return self.servers[start:] + self.servers[:start]
