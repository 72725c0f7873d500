"""A byte tunnel between the client and the upstream after ``101 Switching Protocols``.

Each direction holds at most one read's worth of bytes: a side is not read while the
other side still has bytes to write (backpressure). An end-of-stream is passed on as a
half-close; the tunnel closes when both directions ended, on an error, or after
``timeout`` seconds without traffic.
"""

from __future__ import annotations

import socket

from monkey_py.loop import EVENT_READ, EVENT_WRITE

RECV_SIZE = 65536


class _Side:
    __slots__ = ("sock", "out", "eof", "mask", "shut")

    def __init__(self, sock: socket.socket, out: bytes) -> None:
        self.sock = sock
        self.out = out       # bytes waiting to be written to this side
        self.eof = False     # this side sent its end of stream
        self.mask = 0
        self.shut = False    # we half-closed our writing to this side


class Tunnel:
    def __init__(self, loop, client, upstream, to_client: bytes, to_upstream: bytes,
                 timeout: float, on_close) -> None:
        self.loop = loop
        self.sides = (_Side(client, to_client), _Side(upstream, to_upstream))
        self.timeout = timeout
        self.deadline = loop.time() + timeout
        self.on_close = on_close
        self.closed = False
        self.timer = loop.call_at(self.deadline, self._on_timer)
        for side in self.sides:
            side.sock.setblocking(False)
        for side in self.sides:
            self._write(side)
        self._update()

    def _other(self, side: _Side) -> _Side:
        return self.sides[1] if side is self.sides[0] else self.sides[0]

    def _update(self) -> None:
        if self.closed:
            return
        for side in self.sides:
            other = self._other(side)
            mask = (EVENT_READ if not side.eof and not other.out else 0) | (
                EVENT_WRITE if side.out else 0)
            if mask != side.mask:
                if not mask:
                    self.loop.remove(side.sock)
                elif not side.mask:
                    self.loop.add(side.sock, mask, lambda m, s=side: self._on_event(s, m))
                else:
                    self.loop.modify(side.sock, mask, lambda m, s=side: self._on_event(s, m))
                side.mask = mask
        if all(side.eof and side.shut for side in self.sides):
            self.close()

    def _on_event(self, side: _Side, mask: int) -> None:
        self.deadline = self.loop.time() + self.timeout
        if mask & EVENT_WRITE:
            self._write(side)
        if mask & EVENT_READ and not self.closed:
            self._read(side)
        self._update()

    def _read(self, side: _Side) -> None:
        other = self._other(side)
        try:
            data = side.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if not data:
            side.eof = True
            self._shutdown_if_done(other)
            return
        other.out = data
        self._write(other)

    def _write(self, side: _Side) -> None:
        if side.out:
            try:
                sent = side.sock.send(side.out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close()
                return
            side.out = side.out[sent:]
        self._shutdown_if_done(side)

    def _shutdown_if_done(self, side: _Side) -> None:
        """Pass the other side's end of stream on once its bytes are all written."""
        if not side.out and self._other(side).eof and not side.shut:
            side.shut = True
            try:
                side.sock.shutdown(socket.SHUT_WR)
            except OSError:
                self.close()

    def _on_timer(self) -> None:
        if self.closed:
            return
        if self.deadline > self.loop.time():
            self.timer = self.loop.call_at(self.deadline, self._on_timer)
        else:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.cancel(self.timer)
        for side in self.sides:
            if side.mask:
                self.loop.remove(side.sock)
            side.sock.close()
        self.on_close()
