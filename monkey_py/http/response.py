"""The per-response writer: status line, headers, framing, body and end, written straight
to the connection's stream.

A :class:`~monkey_py.http.request.Request` *is* its response's writer: a handler's
``respond()``, ``start_response()``, ``write()``, ``sendfile()`` and ``end()`` run here,
on the request's own state, and reach the connection only to say the response is done.
"""

from __future__ import annotations

import logging
import os

from .framing import CHUNKED, LAST_CHUNK, LENGTH, NONE, chunk, frame
from .status import STATUS_LINES, status_line
from .stream import HIGH_WATER

log = logging.getLogger(__name__)

# Bodies up to this size leave in one send with their head.
COALESCE = 65536
# Statuses after which the connection is not kept alive: the request stream may be
# out of step, or the client was told to go away.
CLOSING = frozenset({400, 408, 411, 413, 414, 501, 505})


class ResponseWriter:
    """The state of one response and the methods that write it.

    ``status`` is 0 until the response starts; ``bytes_sent`` counts body bytes;
    ``completed`` is True once the last byte left; ``finished`` once the response is
    over either way (completed, or cut by ``abort()``, a timeout or the client leaving).
    ``on_drain`` is called once when the write buffer drains after ``write()`` returned
    False; ``on_abort`` once if the response can no longer complete. The subclass,
    :class:`~monkey_py.http.request.Request`, sets them all up (one ``__init__`` per
    request is cheaper than two).
    """

    __slots__ = ("conn", "stream", "status", "bytes_sent", "completed", "finished",
                 "response_started", "on_drain", "on_abort", "_framing", "_remaining",
                 "_keep", "_held", "_ending")

    # -- starting ---------------------------------------------------------------------
    def _head(self, status: int, headers, reason: bytes | None, length: int) -> bytes:
        if self.response_started or self.finished:
            raise RuntimeError("a response was already started for this request")
        conn = self.conn
        lines, framing, keep = frame(self.method, self.version, status, length,
                                     conn.may_keep_alive(self))
        self._framing = framing
        self._remaining = length if framing == LENGTH else (0 if framing == NONE else -1)
        self._keep = keep
        self.status = status
        self.response_started = True
        if headers.__class__ is not bytes:
            headers = b"".join([b"%s: %s\r\n" % pair for pair in headers])
        # A handler's own Date, given first (a cache serving a stored response), is kept.
        date = b"" if headers[:5] == b"Date:" else conn.server.date.line
        line = STATUS_LINES.get(status) if reason is None else None
        return b"".join((line or status_line(status, reason), date,
                         conn.params.server_header, headers, lines, b"\r\n"))

    def respond(self, status: int, headers=(), body: bytes = b"",
                reason: bytes | None = None) -> None:
        """Send a complete response with ``body``; Content-Length is added.

        ``headers``: ``(name, value)`` byte pairs, or pre-encoded ``b"Name: value\\r\\n"``
        lines.
        """
        head = self._head(status, headers, reason, len(body))
        stream = self.stream
        if self._framing == NONE or not body:
            stream.write(head)
        else:
            if len(body) < COALESCE:
                stream.write(head + body)
            else:
                stream.write(head, more=True)
                stream.write(body)
            self.bytes_sent += len(body)
        # The whole body is written: the response ends when the stream has sent it.
        self._remaining = 0
        self._ending = True
        if not stream.queue and not self.finished:
            self.conn.response_done(self)

    def error(self, status: int, detail: str = "", headers=()) -> None:
        """Answer with the site's ``[ERROR_PAGES]`` page for ``status`` or a short page
        showing ``detail`` and the request target; ``headers`` are added (a 405 brings
        its own ``Allow``)."""
        body, content_type = self.conn.server.error_body(self.site, status, detail,
                                                         self.target)
        headers = [(b"Content-Type", content_type), *headers]
        if status in CLOSING:
            self.keep_alive = False
        self.respond(status, headers, body)

    def inform(self, status: int, headers: bytes = b"") -> None:
        """Send an interim (1xx) response ahead of the final one; ``headers`` are
        pre-encoded ``b"Name: value\\r\\n"`` lines.

        Only an HTTP/1.1 client gets it (RFC 9110 §15.2), and only before the final
        response starts; it changes nothing of the response's state. ``100 Continue``
        goes out at most once per request, and only to a client that asked for it and
        has not sent its body yet (``send_continue``); 101 is a final response here.
        """
        if status == 100:
            self.conn.send_continue(self)
        elif not 102 <= status <= 199:
            raise ValueError(f"{status} is not an interim status")
        elif self.version == "1.1" and not self.response_started and not self.finished:
            self.stream.write(status_line(status) + headers + b"\r\n")

    def start_response(self, status: int, headers, reason: bytes | None = None,
                       length: int | None = None) -> None:
        """Start the response; its body follows with ``write()``/``sendfile()`` and ``end()``.

        ``length`` is the body's length if known, else it is read from a
        ``Content-Length`` header. With a length the body must have exactly that many
        bytes; without one, HTTP/1.1 clients get a chunked body and HTTP/1.0 clients a
        body that ends when the connection closes. ``headers`` may also be pre-encoded
        ``b"Name: value\\r\\n"`` lines (then pass ``length``).
        """
        if length is None:
            length = -1
            if headers.__class__ is not bytes:
                for name, value in headers:
                    if name.lower() == b"content-length":
                        length = int(value)
                        headers = [h for h in headers if h[0].lower() != b"content-length"]
                        break
        self._held = self._head(status, headers, reason, length)

    # -- the body ---------------------------------------------------------------------
    def write(self, data: bytes) -> bool:
        """Queue body bytes. False means the buffer is full: wait for ``on_drain``."""
        if self.finished:
            return False
        framing = self._framing
        if framing == NONE or not data:
            if self._held:
                self.stream.write(self._take_held())
            return self.stream.queued <= HIGH_WATER
        if self._remaining >= 0:
            if len(data) > self._remaining:
                log.error("a handler wrote more than its Content-Length; closing")
                self.conn.close()
                return False
            self._remaining -= len(data)
        self.bytes_sent += len(data)
        if framing == CHUNKED:
            data = chunk(data)
        held = self._held
        if held:
            self._held = b""
            data = held + data
        return self.stream.write(data)

    def sendfile(self, fd: int, offset: int, count: int, close=True) -> None:
        """Queue ``count`` bytes of the open file descriptor ``fd`` from ``offset``.

        They go out with ``os.sendfile``. ``close``: True closes ``fd`` once they are sent
        (or dropped), False leaves it open, and a callable is called with ``fd`` instead
        (to hand it back to whoever lent it).
        """
        release = os.close if close is True else (close or None)
        if self.finished or self._framing == NONE or count <= 0:
            if release is not None:
                release(fd)
            if self._held and not self.finished:
                self.stream.write(self._take_held())
            return
        if self._remaining >= 0:
            self._remaining -= count
        self.bytes_sent += count
        prefix = self._take_held()
        chunked = self._framing == CHUNKED
        if chunked:
            prefix += b"%x\r\n" % count
        stream = self.stream
        if prefix:
            stream.write(prefix, more=True)
        stream.sendfile(fd, offset, count, release)
        if chunked:
            stream.write(b"\r\n")

    def _take_held(self) -> bytes:
        held = self._held
        self._held = b""
        return held

    def end(self) -> None:
        """The body is complete: stage 40 follows once the last byte is written."""
        if self.finished or self._ending:
            return
        if self._remaining > 0:
            log.error("a handler ended a response %d bytes short of its Content-Length",
                      self._remaining)
            self.conn.close()
            return
        self._ending = True
        tail = self._held
        if self._framing == CHUNKED:
            tail += LAST_CHUNK
        if tail:
            self._held = b""
            self.stream.write(tail)
        if not self.stream.queue and not self.finished:
            self.conn.response_done(self)

    def abort(self) -> None:
        """Give up on the response: the connection is closed without finishing it."""
        if not self.finished:
            self.conn.close()
