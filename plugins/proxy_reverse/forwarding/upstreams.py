"""Upstream servers as one worker sees them: passive health and keep-alive pools."""

from __future__ import annotations

import errno
import logging
import socket
from collections import deque

from monkey_py.loop import EVENT_READ

log = logging.getLogger("monkey_py.proxy_reverse")
_PEEK = int(socket.MSG_PEEK | socket.MSG_DONTWAIT)


class Upstream:
    """One server of one entry in this worker: its address, health and idle connections.

    Passive health: ``attempts`` consecutive failures take the server offline for
    ``offline_timeout`` seconds; then it is tried again. Any success resets the count.
    """

    __slots__ = (
        "spec", "server", "slot", "attempts", "offline_timeout", "failures",
        "offline_until", "idle", "pool_size", "pool_timeout", "entry", "itself",
    )

    def __init__(self, spec, server, slot: int, entry, itself: bool) -> None:
        self.spec = spec
        self.entry = entry            # the EntrySettings it belongs to
        self.itself = itself          # this server's own listener (loop detection)
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


class Channel:
    """An upstream socket's registration in the loop and its timer, both reusable.

    The selector keeps the channel as the socket's callback; handing the socket from a
    request to the pool and back only changes ``handler``, with no system call. Its
    ``timer`` rings ``alarm`` (the current request's timeout check, or nothing).
    """

    __slots__ = ("sock", "handler", "timer", "alarm", "since", "pool", "upstream")

    def __init__(self, sock: socket.socket, handler) -> None:
        self.sock = sock
        self.handler = handler
        self.timer = None
        self.alarm = None
        # While idle in a pool: since when, and whose.
        self.since = 0.0
        self.pool: Pool | None = None
        self.upstream: Upstream | None = None

    def __call__(self, mask: int) -> None:
        self.handler(mask)

    def idle_event(self, _mask: int) -> None:
        """The upstream closed (or wrote on) this idle connection: drop it."""
        self.pool.drop(self)

    def ring(self) -> None:
        self.timer = None
        if self.alarm is not None:
            self.alarm()

    def close(self, loop, registered: bool) -> None:
        """Close the socket (unregistering it first if ``registered``) and drop the timer."""
        if self.timer is not None:
            loop.cancel(self.timer)
            self.timer = None
        if registered:
            loop.remove(self.sock)
        self.sock.close()


class Pool:
    """Idle keep-alive connections to upstreams, per worker.

    An idle socket stays registered for reading, so the upstream closing it (or sending
    anything unasked) drops it at once. A sweep once a second closes connections idle
    for longer than the entry's ``KeepAliveTimeout``.
    """

    SWEEP_SECONDS = 1.0

    def __init__(self, loop) -> None:
        self.loop = loop
        self.holders: set[Upstream] = set()
        self.sweeper = None

    def get(self, upstream: Upstream, check: bool) -> Channel | None:
        """An idle connection to ``upstream``, still registered for reading, or None.

        With ``check``, one that the upstream closed in the meantime is skipped (for a
        request that could not be replayed on a fresh connection if it were dead).
        """
        while upstream.idle:
            channel = upstream.idle.pop()
            if not check or _alive(channel.sock):
                return channel
            self._close(channel)
        return None

    def put(self, upstream: Upstream, channel: Channel, mask: int) -> None:
        """Keep ``channel`` for reuse; ``mask``: the events it is registered for now."""
        if len(upstream.idle) >= upstream.pool_size:
            self._close(channel, bool(mask))
            return
        channel.since = self.loop.time()
        channel.pool = self
        channel.upstream = upstream
        channel.handler = channel.idle_event
        if mask != EVENT_READ:
            if mask:
                self.loop.modify(channel.sock, EVENT_READ, channel)
            else:
                self.loop.add(channel.sock, EVENT_READ, channel)
        upstream.idle.append(channel)
        self.holders.add(upstream)
        if self.sweeper is None:
            self.sweeper = self.loop.call_later(self.SWEEP_SECONDS, self._sweep)

    def drop(self, channel: Channel) -> None:
        """Take an idle ``channel`` out of its pool and close it."""
        idle = channel.upstream.idle
        if channel in idle:
            idle.remove(channel)
        self._close(channel)

    def _close(self, channel: Channel, registered: bool = True) -> None:
        """Close a channel's socket and drop its timer."""
        channel.close(self.loop, registered)

    def _sweep(self) -> None:
        self.sweeper = None
        now = self.loop.time()
        for upstream in list(self.holders):
            idle = upstream.idle
            while idle and idle[0].since + upstream.pool_timeout <= now:
                self._close(idle.popleft())
            if not idle:
                self.holders.discard(upstream)
        if self.holders:
            self.sweeper = self.loop.call_later(self.SWEEP_SECONDS, self._sweep)

    def close_all(self, upstreams) -> None:
        for upstream in upstreams:
            while upstream.idle:
                self._close(upstream.idle.pop())
        self.holders.clear()
        if self.sweeper is not None:
            self.loop.cancel(self.sweeper)
            self.sweeper = None


def _alive(sock: socket.socket) -> bool:
    """An idle upstream socket is dead if it is readable (EOF, reset or stray bytes)."""
    try:
        sock.recv(1, _PEEK)
    except (BlockingIOError, InterruptedError):
        return True
    except OSError as exc:
        if exc.errno == errno.EAGAIN:
            return True
        return False
    return False
