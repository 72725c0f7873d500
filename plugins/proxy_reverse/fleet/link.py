"""A connection to Redis kept open: reconnects with backoff, an outage logged once, and
the state a status page shows.

A link is made and started in a worker (``monkey_worker_start``: sockets must not cross
a fork) and closed when the worker stops. While it has no ready connection (at start,
during an outage, while reconnecting) its commands fail at once with
:class:`~.errors.RedisUnavailable`: nothing waits for Redis, and callers carry on
without it. A failed connection is opened again after ``retry_min`` seconds, doubling
up to ``retry_max``, each wait shortened by a random part of up to a half (so that the
workers of a fleet do not come back in step); the waits start over only once a
connection has held for ``retry_max``, so that a Redis that accepts and then stalls is
not retried in a loop. The log says once that Redis is down (WARNING, with the reason)
and once that it is back (INFO).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from functools import partial

import hiredis

from monkey_py.loop import Timer

from .address import RedisAddress
from .connection import RedisConnection, deliver, log
from .errors import RedisUnavailable


@dataclass(frozen=True)
class RedisParameters:
    """The limits of a link; configuration keys map onto them. Seconds unless said."""

    timeout: float = 0.25         # a command's reply: far below a request's Timeout
    connect_timeout: float = 1.0  # connecting, TLS and the handshake
    retry_min: float = 0.1        # the first wait before reconnecting
    retry_max: float = 5.0        # the longest
    max_waiting: int = 10_000     # commands awaiting replies; beyond, they fail at once


class RedisState:
    """What a status page shows of a link: ``up``, ``since`` (wall clock: when Redis went
    down or came back, or when the link was made), ``last_error``, and counts of
    ``commands`` asked for, of those that ended in an ``errors`` (any RedisError: a
    reply error, refused while down, a broken connection, a timeout), of ``timeouts``
    among them, and of ``outages``."""

    __slots__ = ("up", "since", "last_error", "commands", "errors", "timeouts", "outages")

    def __init__(self) -> None:
        self.up = False
        self.since = time.time()
        self.last_error: str | None = None
        self.commands = self.errors = self.timeouts = self.outages = 0

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}


class RedisLink:
    """The base of :class:`~.client.RedisClient` and :class:`~.pubsub.RedisSubscriber`:
    one connection to ``address`` on ``loop``, kept open from ``start()`` to ``close()``.
    ``role`` names the link in the log."""

    role = "redis"
    # A subclass whose connections receive pub/sub messages defines ``pushed(reply)``.
    pushed = None

    def __init__(self, loop, address: RedisAddress, params: RedisParameters | None = None):
        self.loop = loop
        self.address = address
        self.params = params or RedisParameters()
        self.state = RedisState()
        self.tls_context = address.tls_context() if address.tls else None
        # The ready connection, or None; the one being opened, or None.
        self.connection: RedisConnection | None = None
        self._opening: RedisConnection | None = None
        self._retry: Timer | None = None
        self._failures = 0
        self._up_at = 0.0
        self._outage_logged = False
        self._watchers: list = []
        self.closed = False

    @property
    def up(self) -> bool:
        """Commands are sent now (otherwise they fail at once)."""
        return self.connection is not None

    def start(self) -> None:
        """Open the first connection (in the worker, on its loop)."""
        self._open()

    def watch(self, callback) -> None:
        """Call ``callback(up)`` each time the link comes up or goes down."""
        self._watchers.append(callback)

    def close(self) -> None:
        """Close the connection (callbacks waiting get RedisUnavailable) and stop
        reconnecting; every descriptor is released."""
        self.closed = True
        if self._retry is not None:
            self.loop.cancel(self._retry)
            self._retry = None
        for conn in (self._opening, self.connection):
            if conn is not None:
                conn.fail(RedisUnavailable("the Redis client was closed"))

    # -- sending --------------------------------------------------------------------------
    def _handshake(self) -> list[bytes]:
        """What a new connection sends first: AUTH and SELECT as the address asks, else
        a PING (a connection is up only once Redis has answered)."""
        address = self.address
        commands = []
        if address.password is not None:
            credentials = (address.password,) if address.username is None else (
                address.username, address.password)
            commands.append(("AUTH", *credentials))
        if address.db:
            commands.append(("SELECT", address.db))
        return [hiredis.pack_command(command) for command in commands or [("PING",)]]

    def _sender(self, count: int) -> RedisConnection | None:
        """The connection to send ``count`` commands on, or None: they fail at once."""
        self.state.commands += count
        conn = self.connection
        if conn is not None and len(conn.waiting) + count <= self.params.max_waiting:
            return conn
        return None

    def _refuse(self, callback, count: int) -> None:
        """Fail ``count`` commands at once: ``callback`` gets RedisUnavailable, soon."""
        self.state.errors += count
        if callback is not None:
            if self.connection is not None:
                reason = f"{self.params.max_waiting} Redis commands await replies already"
            elif self.state.last_error is None:
                reason = f"Redis at {self.address} is not connected yet"
            else:
                reason = f"Redis at {self.address} is down ({self.state.last_error})"
            self.loop.call_soon(partial(deliver, callback, None, RedisUnavailable(reason)))

    # -- the connection's life ----------------------------------------------------------------
    def _open(self) -> None:
        self._retry = None
        conn = self._opening = RedisConnection(self, self._handshake(), self.pushed)
        conn.open()

    def connection_ready(self, conn: RedisConnection) -> None:
        self._opening = None
        self.connection = conn
        self._up_at = self.loop.time()
        state = self.state
        state.up = True
        if self._outage_logged:
            log.info("redis: %s link to %s is back after %.1fs down", self.role,
                     self.address, time.time() - state.since)
            self._outage_logged = False
        else:
            log.debug("redis: %s link to %s is up", self.role, self.address)
        state.since = time.time()
        self.restore(conn)
        self._tell(True)

    def restore(self, conn: RedisConnection) -> None:
        """A new connection is up: a subclass sends what it must first (a subscriber,
        its subscriptions)."""

    def connection_failed(self, conn: RedisConnection, error: RedisUnavailable) -> None:
        was_up = conn is self.connection
        if was_up:
            self.connection = None
        else:
            self._opening = None
        state = self.state
        state.up = False
        state.last_error = str(error)
        if self.closed:
            return
        if not self._outage_logged:
            self._outage_logged = True
            state.since = time.time()
            state.outages += 1
            log.warning("redis: %s link to %s is down (%s); requests carry on without "
                        "Redis, reconnecting", self.role, self.address, error)
        params = self.params
        if was_up and self.loop.time() - self._up_at >= params.retry_max:
            self._failures = 0  # a connection that held: start the backoff again
        wait = min(params.retry_max, params.retry_min * 2 ** self._failures)
        if wait < params.retry_max:
            self._failures += 1
        self._retry = self.loop.call_later(wait * random.uniform(0.5, 1.0), self._open)
        if was_up:
            self._tell(False)

    def _tell(self, up: bool) -> None:
        for callback in self._watchers:
            try:
                callback(up)
            except Exception:
                log.exception("redis: a watcher of the %s link failed", self.role)
