"""FastCGI servers as one worker sees them: connections, their pool and the waiting line.

A server gets at most ``MaxConnections`` connections from a worker, in use or idle.
A request finds an idle one (``FCGI_KEEP_CONN`` keeps them open), or opens one, or
waits in line until one is released (at most ``Timeout`` seconds, then 503): with the
limit at or below the server's own (PHP-FPM's ``pm.max_children``), a request never
waits in the server's backlog behind connections the worker keeps idle.

An idle connection stays registered for reading: the server closing it removes it at
once; after ``KeepAliveTimeout`` seconds unused it is closed.
"""

from __future__ import annotations

import logging
import socket
from collections import deque

from monkey_py.http.stream import Stream

from .records import ProtocolError, RecordReader

log = logging.getLogger("monkey_py.fastcgi")

MAX_WAITING = 1024
LOG_EVERY = 10.0


class FcgiConnection:
    """One socket to a FastCGI server; the protocol of its stream."""

    __slots__ = ("server", "stream", "reader", "exchange")

    def __init__(self, server: "FcgiServer") -> None:
        spec = server.spec
        sock = socket.socket(spec.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        if spec.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server = server
        self.stream = Stream(sock, server.loop, self)
        self.reader = RecordReader()
        self.exchange = None

    def close(self) -> None:
        self.exchange = None
        self.stream.close()

    # -- the stream's protocol ------------------------------------------------------------
    def connected(self) -> None:
        self.exchange.connected()

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:
            self.server.drop(self)  # nothing is asked of an idle connection
            return
        try:
            found = self.reader.feed(data)
        except ProtocolError as exc:
            exchange.server_failed(f"not a FastCGI answer: {exc}")
            return
        exchange.records(found)

    def eof_received(self) -> None:
        if self.exchange is None:
            self.server.drop(self)
        else:
            self.exchange.server_closed("the server closed the connection")

    def connection_lost(self, exc: OSError) -> None:
        if self.exchange is None:
            self.server.drop(self)
        else:
            self.exchange.server_closed(exc.strerror or str(exc))

    def write_drained(self) -> None:
        if self.exchange is not None:
            self.exchange.stdin_drained()

    def timed_out(self) -> None:
        if self.exchange is None:
            self.server.drop(self)  # idle for KeepAliveTimeout
        else:
            self.exchange.timed_out()

    def crashed(self, exc: Exception) -> None:
        if self.exchange is None:
            self.server.drop(self)
        else:
            self.exchange.crashed(exc)


class FcgiServer:
    """One ``[FASTCGI_SERVER]`` in this worker."""

    def __init__(self, spec, loop) -> None:
        self.spec = spec
        self.loop = loop
        self.idle: deque[FcgiConnection] = deque()
        self.busy = 0
        self.waiting: deque = deque()
        self._logged = -LOG_EVERY

    def acquire(self, exchange) -> None:
        """Give ``exchange`` a connection now, or put it in line (or answer 503)."""
        while self.idle:
            conn = self.idle.pop()
            if not conn.stream.closed:
                self._lend(conn, exchange, reused=True)
                return
        if self.busy + len(self.idle) < self.spec.max_connections:
            self._open(exchange)
            return
        if len(self.waiting) >= MAX_WAITING:
            exchange.unavailable(f"{MAX_WAITING} requests wait already")
            return
        timer = self.loop.call_later(self.spec.timeout, lambda: self._gave_up(exchange))
        self.waiting.append((exchange, timer))

    def _gave_up(self, exchange) -> None:
        self.waiting = deque(item for item in self.waiting if item[0] is not exchange)
        exchange.unavailable(f"all {self.spec.max_connections} connections stayed busy for "
                             f"{self.spec.timeout:g}s")

    def leave_line(self, exchange) -> None:
        """``exchange`` does not wait any more (its client left)."""
        for item in self.waiting:
            if item[0] is exchange:
                self.loop.cancel(item[1])
                self.waiting.remove(item)
                return

    def _open(self, exchange) -> None:
        conn = FcgiConnection(self)
        self._lend(conn, exchange, reused=False)
        conn.stream.arm(self.loop.now + self.spec.timeout)
        conn.stream.connect(self.spec.address)

    def _lend(self, conn: FcgiConnection, exchange, reused: bool) -> None:
        self.busy += 1
        conn.exchange = exchange
        exchange.attach(conn, reused)

    def release(self, conn: FcgiConnection, keep: bool) -> None:
        """The exchange on ``conn`` is over: keep the connection for the next, or close it."""
        self.busy -= 1
        conn.exchange = None
        stream = conn.stream
        if keep and self.spec.keep_alive and not stream.closed and not conn.reader.buffer:
            stream.set_reading(True)
            stream.deadline = 0.0
            if self.waiting:
                exchange, timer = self.waiting.popleft()
                self.loop.cancel(timer)
                self._lend(conn, exchange, reused=True)
                return
            stream.arm(self.loop.now + self.spec.keepalive_timeout)
            self.idle.append(conn)
            return
        conn.close()
        if self.waiting:
            exchange, timer = self.waiting.popleft()
            self.loop.cancel(timer)
            self._open(exchange)

    def drop(self, conn: FcgiConnection) -> None:
        """Close an idle connection (the server closed it, or it was unused too long)."""
        if conn in self.idle:
            self.idle.remove(conn)
        conn.close()

    def unreachable(self, reason: str) -> None:
        """Log that the server cannot be reached, at most once every ``LOG_EVERY`` seconds."""
        if self.loop.now - self._logged >= LOG_EVERY:
            self._logged = self.loop.now
            log.error("fastcgi: cannot reach server %s: %s; its requests get 503",
                      self.spec, reason)

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()
        for _, timer in self.waiting:
            self.loop.cancel(timer)
        self.waiting.clear()


class Probe:
    """Connect once when a worker starts, and say in the log whether the server answers."""

    def __init__(self, spec, loop) -> None:
        sock = socket.socket(spec.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        self.spec = spec
        self.stream = Stream(sock, loop, self, reading=False)
        self.stream.arm(loop.now + min(spec.timeout, 5.0))
        self.stream.connect(spec.address)

    def connected(self) -> None:
        log.info("fastcgi: server %s is reachable", self.spec)
        self.stream.close()

    def connection_lost(self, exc: OSError) -> None:
        log.warning("fastcgi: server %s is not reachable (%s): its requests will get 503 "
                    "until it is started", self.spec, exc.strerror or exc)

    def timed_out(self) -> None:
        self.stream.close()
        log.warning("fastcgi: server %s does not accept connections (no answer in %gs)",
                    self.spec, min(self.spec.timeout, 5.0))

    def crashed(self, exc: Exception) -> None:
        self.stream.close()

    def data_received(self, data) -> None:
        pass

    eof_received = write_drained = lambda self, *args: None
