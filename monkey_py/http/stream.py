"""One non-blocking socket on the event loop: its selector registration, its write queue
(bytes and file slices for ``sendfile``), flush, and one deadline. Nothing of HTTP.

The client connection, the proxy's upstream connections and the WebSocket tunnel each
own a Stream and are its *protocol*, which it calls with::

    connected()             a connect() finished (outgoing connections only)
    data_received(data)     bytes were read
    eof_received()          the peer closed its side
    write_drained()         the write queue emptied after a write had to wait
    connection_lost(exc)    a read or write failed: the stream is already closed
    timed_out()             the deadline passed
    crashed(exc)            one of the calls above raised: end what it was doing

A protocol's bug thus costs what that protocol was doing (one request, one tunnel),
never the worker.

``write()`` never blocks: what the socket does not take at once is queued, and the
return value says whether the queue is still under ``HIGH_WATER`` (backpressure).

The deadline has one timer behind it, which is re-armed only when it fires early: a
protocol that pushes the deadline later on every request costs a float store and a
comparison. ``write_timeout``, when set, bounds the time between two moves of queued
output: while bytes wait, each progress pushes the deadline that much further.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import ssl
from collections import deque

from ..loop import EVENT_READ, EVENT_WRITE
from .tls import TlsLayer

log = logging.getLogger(__name__)

RECV_SIZE = 65536
HIGH_WATER = 256 * 1024
SENDFILE_MAX = 1 << 20
# Errors that only mean the peer went away.
DISCONNECTED = frozenset({errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN,
                          errno.ETIMEDOUT, errno.ECONNREFUSED, errno.EHOSTUNREACH,
                          errno.ENETUNREACH})
_MORE = socket.MSG_MORE
_PEEK = int(socket.MSG_PEEK | socket.MSG_DONTWAIT)


class FileChunk:
    """``remaining`` bytes of file descriptor ``fd`` from ``offset``, for ``os.sendfile``.

    ``release(fd)`` is called once the bytes are sent or dropped: ``os.close`` for a
    descriptor the stream owns, a cache's release for a shared one, None to keep it.
    """

    __slots__ = ("fd", "offset", "remaining", "release", "pending")

    def __init__(self, fd: int, offset: int, count: int, release) -> None:
        self.fd = fd
        self.offset = offset
        self.remaining = count
        self.release = release
        # Bytes read from the file and not yet taken by a TLS socket (see tls.py).
        self.pending: bytes | None = None

    def done(self) -> None:
        release = self.release
        if release is not None:
            self.release = None
            release(self.fd)


class Stream:
    """A socket owned by one protocol on one loop."""

    __slots__ = ("sock", "fd", "loop", "protocol", "queue", "queued", "mask", "reading",
                 "setup", "setup_mask", "tls", "closed", "deadline", "timer", "write_timeout",
                 "_on_event", "_recv", "_send")

    def __init__(self, sock: socket.socket, loop, protocol, reading: bool = True) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.loop = loop
        self.protocol = protocol
        # Output the socket did not take yet; made when first needed (most streams of
        # small answers never wait, and an idle connection is then some 700 bytes less).
        self.queue: deque | None = None
        self.queued = 0
        self.mask = 0
        self.reading = reading
        # A step before the stream carries data (connecting, a TLS handshake): it gets
        # every event while set, and says which events it waits for.
        self.setup = None
        self.setup_mask = 0
        # TLS on this stream (monkey_py.http.tls.TlsLayer), or None.
        self.tls = None
        self.closed = False
        self.deadline = 0.0
        self.timer = None
        self.write_timeout = 0.0
        # Bound once: the selector keeps this as the socket's callback.
        self._on_event = self.on_event
        # How bytes are read and written: the socket's own methods, or TLS's.
        self._recv = sock.recv
        self._send = sock.send
        if sock.__class__ is not socket.socket and isinstance(sock, ssl.SSLSocket):
            # A TLS socket another stream detached (a tunnel taking the connection over).
            TlsLayer(self, sock.context, sock.server_side).adopt(sock)

    # -- registration ---------------------------------------------------------------
    def update(self) -> None:
        """Register for what is wanted now: reading if ``reading``, writing if queued."""
        if self.setup is None:
            mask = (EVENT_READ if self.reading else 0) | (EVENT_WRITE if self.queue else 0)
        else:
            mask = self.setup_mask
        if mask != self.mask and not self.closed:
            loop = self.loop
            if not mask:
                loop.remove(self.sock)
            elif not self.mask:
                loop.add(self.sock, mask, self._on_event)
            else:
                loop.modify(self.sock, mask, self._on_event)
            self.mask = mask

    def set_reading(self, reading: bool) -> None:
        if reading != self.reading:
            self.reading = reading
            self.update()

    # -- deadline -------------------------------------------------------------------
    def arm(self, deadline: float) -> None:
        """Call ``protocol.timed_out()`` at ``deadline`` (0: never) unless it moves."""
        self.deadline = deadline
        if deadline:
            timer = self.timer
            if timer is None or timer.when > deadline:
                if timer is not None:
                    self.loop.cancel(timer)
                self.timer = self.loop.call_at(deadline, self._ring)

    def _ring(self) -> None:
        self.timer = None
        deadline = self.deadline
        if self.closed or not deadline:
            return
        if deadline > self.loop.time():
            self.timer = self.loop.call_at(deadline, self._ring)
            return
        self.deadline = 0.0
        try:
            self.protocol.timed_out()
        except Exception as exc:
            self.protocol.crashed(exc)

    # -- connecting -------------------------------------------------------------------
    def connect(self, address, tls=None) -> None:
        """Connect without blocking, then (with ``tls``, a ``TlsLayer``) secure the
        connection: ``protocol.connected()`` follows, or ``connection_lost`` (at once
        when the connection is refused at once)."""
        self.tls = tls
        err = self.sock.connect_ex(address)
        if err == 0:
            self._connected()
        elif err == errno.EINPROGRESS:
            # (EAGAIN is a failure: no local port left, or a Unix socket's backlog full.)
            self.setup = self._connect_done
            self.setup_mask = EVENT_WRITE
            self.update()
        else:
            self.lost(OSError(err, os.strerror(err)))

    def _connect_done(self) -> None:
        self.setup = None
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.lost(OSError(err, os.strerror(err)))
        else:
            self._connected()

    def _connected(self) -> None:
        if self.tls is not None:
            self.tls.start()
        else:
            self.update()
            self.protocol.connected()

    # -- events -----------------------------------------------------------------------
    def on_event(self, mask: int) -> None:
        try:
            if self.setup is not None:
                self.setup()
                return
            if mask & EVENT_WRITE:
                self.flush()
                if self.closed:
                    return
            if mask & EVENT_READ and self.reading:
                try:
                    data = self._recv(RECV_SIZE)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:
                    self.lost(exc)
                    return
                if data:
                    self.protocol.data_received(data)
                else:
                    self.protocol.eof_received()
        except Exception as exc:
            self.protocol.crashed(exc)

    # -- writing ----------------------------------------------------------------------
    def write(self, data, more: bool = False) -> bool:
        """Send ``data`` now or queue it; False when the queue is over ``HIGH_WATER``.

        ``more``: further bytes follow at once (``MSG_MORE`` keeps them in one segment).
        """
        if self.closed:
            return False
        if not self.queue and self.setup is None:
            try:
                sent = self._send(data, _MORE if more else 0)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self.lost(exc)
                return False
            if sent == len(data):
                return True
            data = memoryview(data)[sent:]
            self._enqueue(data)
            self.queued += len(data)
            self._waiting()
            return self.queued <= HIGH_WATER
        self._enqueue(data)
        self.queued += len(data)
        return self.queued <= HIGH_WATER

    def _enqueue(self, item) -> None:
        queue = self.queue
        if queue is None:
            queue = self.queue = deque()
        queue.append(item)

    def sendfile(self, fd: int, offset: int, count: int, release) -> None:
        """Queue ``count`` bytes of ``fd`` from ``offset``, then ``release(fd)``."""
        chunk = FileChunk(fd, offset, count, release)
        if self.closed:
            chunk.done()
            return
        waiting = not self.queue
        self._enqueue(chunk)
        self.flush()
        if waiting and self.queue and self.setup is None:
            self._waiting()

    def _waiting(self) -> None:
        """Output is queued from now on: watch for writability, bound its progress."""
        self.update()
        if self.write_timeout:
            self.arm(self.loop.now + self.write_timeout)

    def flush(self) -> None:
        """Write what the socket takes; once a queue that had to wait is empty,
        ``write_drained()``."""
        queue = self.queue
        if not queue or self.setup is not None:
            return  # nothing to write, or not yet: the setup step updates when done
        waited = self.mask & EVENT_WRITE
        progressed = False
        try:
            while queue:
                item = queue[0]
                if item.__class__ is FileChunk:
                    if self.tls is None:
                        sent = os.sendfile(self.fd, item.fd, item.offset,
                                           min(item.remaining, SENDFILE_MAX))
                    else:
                        sent = self.tls.send_file(item)
                    if sent == 0:
                        raise OSError(errno.EIO, "file shorter than announced")
                    progressed = True
                    item.offset += sent
                    item.remaining -= sent
                    if item.remaining:
                        continue
                    queue.popleft()
                    item.done()
                else:
                    sent = self._send(item)
                    progressed = True
                    self.queued -= sent
                    if sent < len(item):
                        queue[0] = memoryview(item)[sent:]
                        break
                    queue.popleft()
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            self.lost(exc)
            return
        if queue:
            if progressed and self.write_timeout:
                self.deadline = self.loop.now + self.write_timeout
            self.update()
            return
        if waited:
            self.update()
            self.protocol.write_drained()

    def idle_alive(self) -> bool:
        """Whether an idle connection is still open and silent: the peer has not closed
        or reset it, nor sent anything unasked. Plain bytes are peeked at; TLS records
        are read, which takes those that carry no data (a session ticket) in passing."""
        try:
            if self.tls is None:
                self.sock.recv(1, _PEEK)
            else:
                self.tls.recv(1)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError as exc:
            return exc.errno == errno.EAGAIN
        return False

    # -- ending -----------------------------------------------------------------------
    def lost(self, exc: OSError, report: bool = True) -> None:
        """A read or write failed: close, then tell the protocol (and, with ``report``,
        log a failure that is more than the peer going away)."""
        if report and exc.errno not in DISCONNECTED:
            log.warning("socket %s failed: %s", _peer(self.sock), exc)
        self.close()
        self.protocol.connection_lost(exc)

    def shutdown_write(self) -> bool:
        """Half-close: no more bytes will be written. False if the socket is gone.

        With TLS only the TCP side ends, without a close_notify: ``ssl`` sends one only
        by also reading the peer's next record, which OpenSSL drops when it is data. The
        stream goes on reading through TLS (an SSLSocket's own shutdown would drop TLS,
        and the peer's records would then be read undecrypted).
        """
        try:
            socket.socket.shutdown(self.sock, socket.SHUT_WR)
        except OSError:
            return False
        return True

    def _release(self) -> None:
        self.closed = True
        if self.timer is not None:
            self.loop.cancel(self.timer)
            self.timer = None
        if self.mask:
            self.loop.remove(self.sock)
            self.mask = 0
        for item in self.queue or ():
            if item.__class__ is FileChunk:
                item.done()
        self.queue = None
        self.queued = 0

    def close(self) -> None:
        """Drop queued output (releasing its files) and close the socket; idempotent."""
        if not self.closed:
            self._release()
            self.sock.close()

    def detach(self) -> tuple[socket.socket, bytes]:
        """Leave the loop without closing: ``(socket, queued bytes not yet written)``.

        Queued file slices cannot be handed over: the caller must not detach then.
        """
        queue = self.queue or ()
        if any(item.__class__ is FileChunk for item in queue):
            raise RuntimeError("cannot detach a stream while a file is being sent")
        unsent = b"".join(bytes(item) for item in queue)
        self._release()
        return self.sock, unsent


def _peer(sock: socket.socket):
    try:
        return sock.getpeername()
    except OSError:
        return "?"
