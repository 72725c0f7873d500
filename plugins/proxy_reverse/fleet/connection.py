"""One connection to Redis: the protocol of a stream, RESP read by ``hiredis``.

Commands arrive packed (``hiredis.pack_command``); those sent in one loop iteration leave
in one write (pipelining). Redis answers in order, so each reply goes to the oldest
callback waiting. Every command has a deadline and the stream's one deadline is the
oldest one's. A connection that fails (refused, reset, closed by Redis, a reply late,
bytes that are not RESP) is closed, its link is told, and every callback still waiting
gets the error, once.

Opening it connects, secures it (``rediss://``) and sends the link's handshake (AUTH,
SELECT or PING) in one write; it is *ready* once each handshake command has answered
without an error, all within the connect timeout.
"""

from __future__ import annotations

import logging
import socket
from collections import deque

import hiredis

from monkey_py.http.stream import Stream
from monkey_py.http.tls import TlsLayer

from .errors import RedisReplyError, RedisTimeout, RedisUnavailable

log = logging.getLogger("monkey_py.proxy_reverse.fleet")

# hiredis's "no whole reply yet" (its default, False, is also a RESP3 reply).
INCOMPLETE = object()
# Pub/sub messages: pushed by Redis, answers to no command.
PUSHED = frozenset({b"message", b"pmessage"})
# A quiet connection (a subscriber's) to a host that vanished is found dead within about
# KEEPIDLE + KEEPINTVL * KEEPCNT seconds.
KEEPIDLE, KEEPINTVL, KEEPCNT = 5, 2, 3


def deliver(callback, reply, error) -> None:
    """``callback(reply, error)``; its exception is logged and goes no further, so that a
    caller's bug costs nobody else's reply."""
    try:
        callback(reply, error)
    except Exception:
        log.exception("redis: a command's callback failed")


class RedisConnection:
    """A socket to Redis for one link (see :mod:`.link`): its commands and their replies."""

    __slots__ = ("link", "stream", "reader", "waiting", "outgoing", "push", "handshake",
                 "ready", "failed")

    def __init__(self, link, handshake: list[bytes], push=None) -> None:
        address = link.address
        sock = socket.socket(address.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPIDLE)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPINTVL)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPCNT)
        self.link = link
        self.stream = Stream(sock, link.loop, self)
        self.reader = hiredis.Reader(replyError=RedisReplyError, notEnoughData=INCOMPLETE)
        # (callback or None, deadline) per command sent and not yet answered, oldest first.
        self.waiting: deque = deque()
        # Packed commands of this loop iteration, written together by _flush.
        self.outgoing: list[bytes] = []
        # Called with each pub/sub message (a subscriber's connection), else None.
        self.push = push
        self.handshake = handshake
        self.ready = False
        self.failed = False

    def open(self) -> None:
        """Connect (and secure); the handshake follows, then ``link.connection_ready``."""
        link = self.link
        self.stream.arm(link.loop.time() + link.params.connect_timeout)
        context = link.tls_context
        tls = None if context is None else TlsLayer(
            self.stream, context, server_side=False, server_hostname=link.address.host)
        self.stream.connect(link.address.address, tls=tls)

    # -- commands ---------------------------------------------------------------------
    def send(self, data: bytes, callback, deadline: float) -> None:
        """Queue one packed command; ``callback(reply, error)`` when it is answered."""
        waiting = self.waiting
        if not waiting:
            self.stream.arm(deadline)
        waiting.append((callback, deadline))
        if not self.outgoing:
            self.link.loop.call_soon(self._flush)
        self.outgoing.append(data)

    def _flush(self) -> None:
        outgoing = self.outgoing
        self.outgoing = []
        if not self.failed:
            self.stream.write(outgoing[0] if len(outgoing) == 1 else b"".join(outgoing))

    def _handshake_answered(self, reply, error) -> None:
        if error is not None:
            self.fail(RedisUnavailable(f"Redis refused the connection's setup: {error}"))
            return
        if self.waiting:
            return
        self.ready = True
        self.link.connection_ready(self)

    # -- failing ------------------------------------------------------------------------
    def fail(self, error: RedisUnavailable) -> None:
        """Close, tell the link, then give ``error`` to every callback waiting (once)."""
        if self.failed:
            return
        self.failed = True
        self.stream.close()
        waiting = self.waiting
        self.waiting = deque()
        self.link.connection_failed(self, error)
        if not self.ready:
            return  # only the handshake was waiting
        state = self.link.state
        state.errors += len(waiting)
        if isinstance(error, RedisTimeout):
            state.timeouts += len(waiting)
        for callback, _ in waiting:
            if callback is not None:
                deliver(callback, None, error)

    # -- the stream's protocol ------------------------------------------------------------
    def connected(self) -> None:
        deadline = self.stream.deadline
        for command in self.handshake:
            self.send(command, self._handshake_answered, deadline)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        waiting = self.waiting
        stream = self.stream
        while not self.failed:  # a callback may have failed the connection
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                self.fail(RedisUnavailable(f"Redis sent what is not RESP: {exc}"))
                return
            if reply is INCOMPLETE:
                return
            if self.push is not None and reply.__class__ is list and reply \
                    and reply[0] in PUSHED:
                self.push(reply)
                continue
            if not waiting:
                self.fail(RedisUnavailable("Redis sent a reply to no command"))
                return
            callback = waiting.popleft()[0]
            if waiting:
                stream.arm(waiting[0][1])
            else:
                stream.deadline = 0.0
            if reply.__class__ is RedisReplyError:
                if self.ready:
                    self.link.state.errors += 1
                if callback is not None:
                    deliver(callback, None, reply)
            elif callback is not None:
                deliver(callback, reply, None)

    def eof_received(self) -> None:
        self.fail(RedisUnavailable("Redis closed the connection"))

    def connection_lost(self, exc: OSError) -> None:
        self.fail(RedisUnavailable(exc.strerror or str(exc)))

    def timed_out(self) -> None:
        params = self.link.params
        if self.ready:
            self.fail(RedisTimeout(f"no reply from Redis in {params.timeout:g}s"))
        else:
            self.fail(RedisTimeout(f"not connected in {params.connect_timeout:g}s"))

    def crashed(self, exc: Exception) -> None:
        log.error("redis: connection to %s failed on its own error", self.link.address,
                  exc_info=exc)
        self.fail(RedisUnavailable(f"internal error: {exc!r}"))

    def write_drained(self) -> None:
        pass  # nothing waits for room: the commands awaiting replies are bounded
