"""A byte tunnel between the client and the upstream after ``101 Switching Protocols``.

Each side is a stream. Bytes read from one side are written to the other; a side is not
read while the other still has bytes queued (backpressure: each direction holds at most
one read's worth). An end of stream is passed on as a half-close once the bytes before
it are written; the tunnel closes when both directions ended, on an error, or after
``timeout`` seconds without traffic.

A side that speaks TLS is not half-closed: the tunnel closes instead, once the bytes
before the end are written to it (as nginx ends an upgraded connection). TLS peers take
an end of TCP without close_notify as a failure and stop writing too, and ``ssl`` cannot
send a close_notify without reading, and losing, what the peer sends next.
"""

from __future__ import annotations

import logging
import socket

from monkey_py.http.stream import Stream

log = logging.getLogger("monkey_py.proxy_reverse")


class _Side:
    """The protocol of one side's stream."""

    __slots__ = ("tunnel", "stream", "other", "eof", "shut")

    def __init__(self, tunnel: "Tunnel", sock: socket.socket) -> None:
        self.tunnel = tunnel
        sock.setblocking(False)
        self.stream = Stream(sock, tunnel.loop, self)
        self.other: _Side | None = None
        self.eof = False     # this side sent its end of stream
        self.shut = False    # the tunnel half-closed its writing to this side

    def send(self, data: bytes) -> None:
        """Write ``data`` to this side; the other side waits until it is all written."""
        self.stream.write(data)
        if self.stream.queue:
            self.other.stream.set_reading(False)

    def data_received(self, data: bytes) -> None:
        self.tunnel.touch()
        self.other.send(data)

    def eof_received(self) -> None:
        self.eof = True
        self.stream.set_reading(False)
        self.other.pass_eof()

    def write_drained(self) -> None:
        self.tunnel.touch()
        if not self.other.eof:
            self.other.stream.set_reading(True)
        self.pass_eof()

    def pass_eof(self) -> None:
        """Half-close this side once the other side ended and its bytes are written (or
        close the tunnel, for a TLS side)."""
        if self.other.eof and not self.shut and not self.stream.queue:
            self.shut = True
            if self.stream.tls is not None or not self.stream.shutdown_write():
                self.tunnel.close()
                return
            if self.other.shut:
                self.tunnel.close()

    def connection_lost(self, exc: OSError) -> None:
        self.tunnel.close()

    def timed_out(self) -> None:
        self.tunnel.close()

    def crashed(self, exc: Exception) -> None:
        log.error("the tunnel failed: %s", exc, exc_info=exc)
        self.tunnel.close()


class Tunnel:
    def __init__(self, loop, client, upstream, to_client: bytes, to_upstream: bytes,
                 timeout: float, on_close) -> None:
        self.loop = loop
        self.timeout = timeout
        self.on_close = on_close
        self.closed = False
        self.sides = (_Side(self, client), _Side(self, upstream))
        first, second = self.sides
        first.other, second.other = second, first
        # The first side's timer is the tunnel's: it rings after ``timeout`` of silence.
        first.stream.arm(loop.now + timeout)
        for side, pending in ((first, to_client), (second, to_upstream)):
            side.stream.update()
            if pending:
                side.send(pending)

    def touch(self) -> None:
        self.sides[0].stream.deadline = self.loop.now + self.timeout

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for side in self.sides:
            side.stream.close()
        self.on_close()
