"""Upstream servers as one worker sees them: passive health and keep-alive pools."""

from __future__ import annotations

import logging
import socket
from collections import deque
from math import inf

from monkey_py.http.tls import TlsLayer

log = logging.getLogger("monkey_py.proxy_reverse")


class Upstream:
    """One server of one entry in this worker: its address, health and idle connections.

    Passive health: ``attempts`` failures charged in a row take the server offline for
    ``offline_timeout`` seconds; then it is tried again. Any success resets the count.
    The sole server of an entry is never taken offline (there is nothing to fail over
    to). An active health check that fails holds it offline until the check passes
    again. ``offline_until`` is the one figure the request path reads: the end of the
    passive offline time, or infinity while the health check holds the server down.
    """

    __slots__ = (
        "spec", "server", "slot", "attempts", "offline_timeout", "failures",
        "offline_until", "passive_until", "check_down", "check_rises", "back_at", "sole",
        "max_conns", "idle", "pool_size", "pool_timeout", "entry", "itself", "authority",
        "tally", "availability", "tls_context", "tls_name", "tls_session",
    )

    def __init__(self, spec, server, slot: int, entry, itself: bool, sole: bool = False) -> None:
        self.spec = spec
        self.entry = entry            # the EntrySettings it belongs to
        self.itself = itself          # this server's own listener (loop detection)
        self.server = server          # the balancer's Server, or None for a backup
        self.slot = slot              # the statistics row of this upstream
        self.sole = sole              # the only server of its entry: never offline
        self.attempts = entry.attempts
        self.offline_timeout = entry.offline_timeout
        self.failures = 0
        self.offline_until = 0.0
        self.passive_until = 0.0      # 0: not taken offline by failures
        self.check_down = False       # the active health check says it is down
        self.check_rises = 0          # times the check saw it come back, as last read
        self.back_at = 0.0            # when it last came back (its slow start)
        # Connections in use at once per worker (MaxConnections); infinite: no limit.
        self.max_conns = entry.max_connections or inf
        self.idle: deque = deque()
        self.pool_size = entry.keepalive_connections
        self.pool_timeout = entry.keepalive_timeout
        # Its address as a Host header value (when PreserveHost is Off).
        host = f"[{spec.host}]" if spec.family == socket.AF_INET6 else spec.host
        self.authority = f"{host}:{spec.port}".encode()
        # This worker's statistics counts for it (set when the worker starts).
        self.tally = None
        # The entry's Availability, told when the server goes offline or comes back.
        self.availability = None
        # An https:// server: the entry's TLS context, the name sent as SNI and checked
        # in its certificate (UpstreamServerName, else the host in ServerList), and the
        # session of the latest connection, which the next one resumes.
        self.tls_context = entry.tls_context if spec.tls else None
        self.tls_name = entry.upstream_server_name or spec.host
        self.tls_session = None

    @property
    def name(self) -> str:
        return self.spec.name

    def tls_for(self, stream, resume: bool = True) -> TlsLayer | None:
        """The TLS a new connection to it starts (None for a plain server): SNI and the
        certificate's check by ``tls_name``; with ``resume``, the latest session offered
        for resumption."""
        if self.tls_context is None:
            return None
        return TlsLayer(stream, self.tls_context, False, self.tls_name,
                        self.tls_session if resume else None)

    def host_for(self, request) -> bytes:
        """The Host header it gets for ``request``: the client's, or its own address."""
        if self.entry.preserve_host and request.host:
            return request.host
        return self.authority

    def succeeded(self, now: float) -> None:
        """It answered: its failures are forgiven, and a passive offline mark ends."""
        self.failures = 0
        if self.passive_until:
            if self.passive_until > now:
                self.back_at = now    # back before its time (panic mode used it)
            self.passive_until = 0.0
            self.offline_until = inf if self.check_down else 0.0
            self.availability.changed()

    def failed(self, now: float, reason: str) -> bool:
        """Charge a failure to it; True when that takes it offline."""
        self.failures += 1
        if self.failures < self.attempts or self.passive_until > now or self.sole:
            return False
        self.hold_offline(now + self.offline_timeout)
        self.failures = 0
        log.error("upstream %s is offline for %gs after %d failure(s); last: %s",
                  self.name, self.offline_timeout, self.attempts, reason)
        return True

    def hold_offline(self, until: float) -> bool:
        """Take it offline until ``until`` (monotonic), after failures seen here or by
        another instance of the fleet; False, and nothing changes, for a sole server
        (never taken offline) or one already held offline as long."""
        if self.sole or self.passive_until >= until:
            return False
        self.passive_until = self.back_at = until
        if not self.check_down:
            self.offline_until = until
        self.availability.changed()
        return True

    def checked(self, down: bool, now: float) -> None:
        """The active health check's verdict changed: hold it offline, or let it back
        (a server coming back starts afresh, its passive offline time forgotten)."""
        self.check_down = down
        if not down:
            self.failures = 0
            self.passive_until = 0.0
            self.back_at = now
        self.offline_until = inf if down else self.passive_until
        self.availability.changed()


class Pool:
    """Idle keep-alive connections to upstreams, per worker.

    An idle connection stays registered for reading, so the upstream closing it (or
    sending anything unasked) drops it at once. A sweep once a second closes connections
    idle for longer than the entry's ``KeepAliveTimeout``.
    """

    SWEEP_SECONDS = 1.0

    def __init__(self, loop) -> None:
        self.loop = loop
        self.holders: set[Upstream] = set()
        self.sweeper = None

    def get(self, upstream: Upstream, check: bool):
        """An idle connection to ``upstream``, or None.

        With ``check``, one that the upstream closed in the meantime is skipped (for a
        request that could not be replayed on a fresh connection if it were dead).
        """
        idle = upstream.idle
        while idle:
            conn = idle.pop()
            if not check or conn.stream.idle_alive():
                return conn
            conn.close()
        return None

    def put(self, upstream: Upstream, conn) -> None:
        """Keep ``conn`` for reuse, still registered for reading."""
        if len(upstream.idle) >= upstream.pool_size:
            conn.close()
            return
        conn.release()
        conn.since = self.loop.now
        idle = upstream.idle
        if not idle:
            self.holders.add(upstream)
        idle.append(conn)
        if self.sweeper is None:
            self.sweeper = self.loop.call_later(self.SWEEP_SECONDS, self._sweep)

    @staticmethod
    def drop(upstream: Upstream, conn) -> None:
        """Take an idle ``conn`` out of its pool and close it."""
        if conn in upstream.idle:
            upstream.idle.remove(conn)
        conn.close()

    def _sweep(self) -> None:
        self.sweeper = None
        now = self.loop.now
        for upstream in list(self.holders):
            idle = upstream.idle
            while idle and idle[0].since + upstream.pool_timeout <= now:
                idle.popleft().close()
            if not idle:
                self.holders.discard(upstream)
        if self.holders:
            self.sweeper = self.loop.call_later(self.SWEEP_SECONDS, self._sweep)

    def close_all(self, upstreams) -> None:
        for upstream in upstreams:
            while upstream.idle:
                upstream.idle.pop().close()
        self.holders.clear()
        if self.sweeper is not None:
            self.loop.cancel(self.sweeper)
            self.sweeper = None

