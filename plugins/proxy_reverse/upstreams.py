"""Upstream servers as one worker sees them: passive health and keep-alive pools."""

from __future__ import annotations

import errno
import logging
import socket
from collections import deque

from monkey_py.loop import EVENT_READ

log = logging.getLogger("monkey_py.proxy_reverse")


class Upstream:
    """One server of one entry in this worker: its address, health and idle connections.

    Passive health: ``attempts`` consecutive failures take the server offline for
    ``offline_timeout`` seconds; then it is tried again. Any success resets the count.
    """

    __slots__ = (
        "spec", "server", "slot", "attempts", "offline_timeout", "failures",
        "offline_until", "idle", "pool_size", "pool_timeout",
    )

    def __init__(self, spec, server, slot: int, entry) -> None:
        self.spec = spec
        self.server = server          # the balancer's Server, or None for a backup
        self.slot = slot              # the statistics row of this upstream
        self.attempts = entry.attempts
        self.offline_timeout = entry.offline_timeout
        self.failures = 0
        self.offline_until = 0.0
        self.idle: deque = deque()
        self.pool_size = entry.keepalive_connections
        self.pool_timeout = entry.keepalive_timeout

    @property
    def name(self) -> str:
        return self.spec.name

    def available(self, now: float) -> bool:
        return self.offline_until <= now

    def succeeded(self) -> None:
        self.failures = 0
        self.offline_until = 0.0

    def failed(self, now: float, reason: str) -> bool:
        """Count a failure; True when it takes the server offline."""
        self.failures += 1
        if self.failures >= self.attempts and self.offline_until <= now:
            self.offline_until = now + self.offline_timeout
            self.failures = 0
            log.error("upstream %s is offline for %gs after %d failure(s); last: %s",
                      self.name, self.offline_timeout, self.attempts, reason)
            return True
        return False


class Pool:
    """Idle keep-alive connections to upstreams, per worker.

    An idle socket stays registered for reading: the upstream closing it (or sending
    anything unasked) removes it at once, and a timer drops it after the idle timeout.
    """

    def __init__(self, loop) -> None:
        self.loop = loop

    def get(self, upstream: Upstream):
        """A live idle connection to ``upstream``, or None."""
        while upstream.idle:
            sock, timer = upstream.idle.pop()
            self.loop.cancel(timer)
            self.loop.remove(sock)
            if _alive(sock):
                return sock
            sock.close()
        return None

    def put(self, upstream: Upstream, sock) -> None:
        if len(upstream.idle) >= upstream.pool_size:
            sock.close()
            return
        entry = [sock, None]

        def drop(_mask: int = 0) -> None:
            if entry in upstream.idle:
                upstream.idle.remove(entry)
                self.loop.cancel(entry[1])
                self.loop.remove(sock)
                sock.close()

        entry[1] = self.loop.call_later(upstream.pool_timeout, drop)
        self.loop.add(sock, EVENT_READ, drop)
        upstream.idle.append(entry)

    def close_all(self, upstreams) -> None:
        for upstream in upstreams:
            while upstream.idle:
                sock, timer = upstream.idle.pop()
                self.loop.cancel(timer)
                self.loop.remove(sock)
                sock.close()


def _alive(sock: socket.socket) -> bool:
    """An idle upstream socket is dead if it is readable (EOF, reset or stray bytes)."""
    try:
        data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return True
    except OSError as exc:
        if exc.errno == errno.EAGAIN:
            return True
        return False
    return False
