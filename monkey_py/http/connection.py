"""One client connection: socket I/O, keep-alive, pipelining, timeouts, response framing.

The connection reads into the sans-IO :class:`RequestParser`, hands complete request
heads to the server one at a time (responses leave in request order), and writes what
the handler produces with backpressure: ``write()`` returns False above the high-water
mark and ``request.on_drain`` fires when the buffer empties.

One timer per connection watches ``deadline``; it is re-armed only when it fires early,
so the hot path just stores a float.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections import deque
from typing import TYPE_CHECKING

from ..loop import EVENT_READ, EVENT_WRITE
from .parser import ParseError, RequestParser
from .request import Headers, Request
from .status import NO_BODY, status_line

if TYPE_CHECKING:
    from ..server import Server

log = logging.getLogger(__name__)

RECV_SIZE = 65536
HIGH_WATER = 256 * 1024
MAX_PIPELINED = 16
LINGER_SECONDS = 2.0
_DISCONNECTED = (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN, errno.ETIMEDOUT)

# What the deadline is guarding.
IDLE, READING, WRITING, LINGER, WAITING = range(5)


class FileChunk:
    """A slice of an open file descriptor queued for ``os.sendfile``."""

    __slots__ = ("fd", "offset", "remaining", "close")

    def __init__(self, fd: int, offset: int, count: int, close: bool) -> None:
        self.fd = fd
        self.offset = offset
        self.remaining = count
        self.close = close


class Connection:
    """A client connection owned by one worker's loop."""

    __slots__ = (
        "sock", "fd", "server", "loop", "peer", "parser", "requests", "current",
        "_wq", "_wq_size", "_mask", "_paused", "_closed", "deadline", "_timer",
        "_phase", "_chunked", "_remaining", "_no_body", "_ending", "_keep", "_processing",
        "_parse_error", "_upgraded", "_detached", "_continue_sent", "_head_buf", "notes",
    )

    def __init__(self, sock: socket.socket, peer, server: "Server") -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.server = server
        self.loop = server.loop
        self.peer = peer
        self.parser = RequestParser(server.params.max_request_size)
        self.requests = 0
        self.current: Request | None = None
        self._wq: deque = deque()
        self._wq_size = 0
        self._mask = 0
        self._paused = False
        self._closed = False
        self.deadline = 0.0
        self._timer = None
        self._phase = IDLE
        self._chunked = False
        self._remaining = -1
        self._no_body = False
        self._ending = False
        self._keep = False
        self._processing = False
        self._parse_error: ParseError | None = None
        self._upgraded = False
        self._detached = False
        self._continue_sent = False
        # A started response's head, held back to leave with the first body bytes.
        self._head_buf: bytes | None = None
        # Free space for plugins, keyed by plugin name.
        self.notes: dict[str, object] = {}

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        self._set_deadline(IDLE, self.server.params.timeout)
        self._update_events()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self.loop.cancel(self._timer)
            self._timer = None
        if self._mask:
            self.loop.remove(self.sock)
            self._mask = 0
        for item in self._wq:
            if isinstance(item, FileChunk) and item.close:
                os.close(item.fd)
        self._wq.clear()
        req = self.current
        if req is not None and not req.completed:
            self.current = None
            self._abort_request(req)
        if not self._detached:
            self.sock.close()
        self.server.connection_closed(self)

    def _abort_request(self, req: Request) -> None:
        """The response to ``req`` will never complete: tell its handler and stage 40."""
        callback = req.on_abort
        req.on_abort = None
        req.on_drain = None
        if callback is not None:
            try:
                callback()
            except Exception:
                log.exception("error in an abort callback")
        self.server.response_sent(req)

    # -- timeouts -------------------------------------------------------------------
    def _set_deadline(self, phase: int, seconds: float) -> None:
        self._phase = phase
        deadline = self.loop.time() + seconds
        self.deadline = deadline
        timer = self._timer
        if timer is None or timer.when > deadline:
            if timer is not None:
                self.loop.cancel(timer)
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._closed or self._phase == WAITING:
            return
        if self.deadline > self.loop.time():
            self._timer = self.loop.call_at(self.deadline, self._on_timer)
            return
        if self._phase == READING and self.current is None and not self._wq:
            # Slow client (slowloris): the request did not arrive within Timeout.
            self._parse_error = ParseError(408, "The request did not arrive in time.")
            self._paused = True
            self._process()
            return
        self.close()

    # -- reading --------------------------------------------------------------------
    def _update_events(self) -> None:
        if self._closed or self._detached:
            return
        want_read = not (
            self._paused or self._upgraded or self._parse_error is not None
            or len(self.parser.ready) >= MAX_PIPELINED or self._wq_size > HIGH_WATER
        ) or self._phase == LINGER
        mask = (EVENT_READ if want_read else 0) | (EVENT_WRITE if self._wq else 0)
        if mask != self._mask:
            if not mask:
                self.loop.remove(self.sock)
            elif not self._mask:
                self.loop.add(self.sock, mask, self._on_event)
            else:
                self.loop.modify(self.sock, mask, self._on_event)
            self._mask = mask

    def pause_reading(self) -> None:
        self._paused = True
        self._update_events()

    def resume_reading(self) -> None:
        self._paused = False
        self._update_events()

    def _on_event(self, mask: int) -> None:
        if mask & EVENT_WRITE:
            self._flush()
            if self._closed:
                return
        if mask & EVENT_READ:
            self._on_readable()

    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if self._phase == LINGER:
            if not data:
                self.close()
            return
        if not data:
            # The client is gone (nginx's "client closed"): whatever is in flight stops.
            self.close()
            return
        parser = self.parser
        try:
            rest = parser.feed(data)
        except ParseError as exc:
            self._parse_error = exc
            rest = None
        if rest is not None:
            parser.ready[-1].upgrade = rest
            self._upgraded = True
        if self.current is None:
            if parser.in_message and self._phase == IDLE:
                self._set_deadline(READING, self.server.params.timeout)
            self._process()
        else:
            self._update_events()

    # -- dispatch -------------------------------------------------------------------
    def _process(self) -> None:
        """Start the next queued request while none is in flight."""
        if self._processing:
            return
        self._processing = True
        try:
            ready = self.parser.ready
            while self.current is None and not self._closed:
                if ready:
                    req = ready.popleft()
                    self._begin(req)
                    if req._body_error is not None:
                        error = req._body_error
                        req.site = self.server.vhosts.resolve(req.host)
                        self.respond_error(req, error.status, error.detail, ())
                    else:
                        self.server.dispatch(req)
                elif self._parse_error is not None and self._parse_error.request is None:
                    self._answer_parse_error()
                    break
                else:
                    break
        finally:
            self._processing = False
        if not self._closed:
            self._update_events()

    def _begin(self, req: Request) -> None:
        req.conn = self
        req.start_time = self.loop.time()
        self.current = req
        self._phase = WAITING
        self._ending = False
        self._continue_sent = False

    def _answer_parse_error(self) -> None:
        exc = self._parse_error
        # No request could be read: an empty method and target say so to stage 40.
        req = Request("", b"", "1.1", [], b"", False, 0)
        self._begin(req)
        req.site = self.server.default_site
        self.respond_error(req, exc.status, exc.detail, ())

    # -- writing responses ------------------------------------------------------------
    def _head(self, req: Request, status: int, headers: Headers, reason, length: int) -> bytes:
        """Status line and headers; decides keep-alive and the body framing."""
        params = self.server.params
        keep = (
            req.keep_alive and params.keepalive and not self._upgraded
            and self._parse_error is None and self.requests + 1 < params.max_keepalive_requests
            and not self.server.draining and req.body_complete
        )
        if status == 101:
            keep = True
        no_body = req.method == "HEAD" or status in NO_BODY or status < 200
        self._no_body = no_body
        self._chunked = False
        parts = [status_line(status, reason), self.server.date_header(), params.server_header]
        if length >= 0:
            self._remaining = 0 if no_body else length
            if not (status in NO_BODY or status < 200):
                parts.append(b"Content-Length: %d\r\n" % length)
        else:
            self._remaining = -1
            if not no_body:
                if req.version == "1.1":
                    self._chunked = True
                    parts.append(b"Transfer-Encoding: chunked\r\n")
                else:
                    keep = False
        if isinstance(headers, bytes):
            parts.append(headers)
        else:
            for name, value in headers:
                parts.append(b"%s: %s\r\n" % (name, value))
        if status != 101:
            if not keep:
                parts.append(b"Connection: close\r\n")
            elif req.version == "1.0":
                parts.append(b"Connection: keep-alive\r\n")
        parts.append(b"\r\n")
        self._keep = keep
        req.status = status
        req.response_started = True
        return b"".join(parts)

    def respond(self, req, status, headers, body, reason=None) -> None:
        if req is not self.current or req.response_started:
            raise RuntimeError("a response was already started for this request")
        head = self._head(req, status, headers, reason, len(body))
        if self._no_body or not body:
            self._send(head)
        elif len(body) < 65536:
            self._send(head + body)
        else:
            self._send(head)
            self._send(body)
        if not self._no_body:
            req.bytes_sent += len(body)
            self._remaining = 0
        self.end_response(req)

    def respond_error(self, req, status, detail, headers) -> None:
        body, content_type = self.server.error_body(req.site, status, detail)
        headers = [(b"Content-Type", content_type), *headers]
        if status == 405:
            headers.append((b"Allow", b"GET, HEAD"))
        if status in (400, 408, 411, 413, 414, 431, 501, 505):
            req.keep_alive = False
        self.respond(req, status, headers, body)

    def start_response(self, req, status, headers, reason=None, length=None) -> None:
        if req is not self.current or req.response_started:
            raise RuntimeError("a response was already started for this request")
        if length is None:
            length = -1
            for name, value in headers:
                if name.lower() == b"content-length":
                    length = int(value)
                    headers = [h for h in headers if h[0].lower() != b"content-length"]
                    break
        # Held back: the first write, sendfile or end sends it with what follows, so a
        # small response leaves in one segment.
        self._head_buf = self._head(req, status, headers, reason, length)

    def _take_head(self) -> bytes:
        head = self._head_buf
        if head is None:
            return b""
        self._head_buf = None
        return head

    def send_continue(self, req: Request) -> None:
        """``100 Continue`` for a request that expects it, once, before the body is read."""
        if (
            req is self.current and not req.response_started and not self._continue_sent
            and not req.body_complete and req.version == "1.1"
        ):
            expect = req.header(b"expect")
            if expect is not None and expect.lower() == b"100-continue":
                self._continue_sent = True
                self._send(b"HTTP/1.1 100 Continue\r\n\r\n")

    def write_body(self, req: Request, data: bytes) -> bool:
        if req is not self.current or self._closed:
            return False
        if self._no_body or not data:
            if self._head_buf is not None:
                self._send(self._take_head())
            return self._wq_size <= HIGH_WATER
        if self._remaining >= 0:
            if len(data) > self._remaining:
                log.error("a handler wrote more than its Content-Length; closing")
                self.close()
                return False
            self._remaining -= len(data)
        req.bytes_sent += len(data)
        if self._chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        if self._head_buf is not None:
            data = self._take_head() + data
        self._send(data)
        return self._wq_size <= HIGH_WATER

    def write_file(self, req: Request, fd: int, offset: int, count: int, close: bool = True) -> None:
        if req is not self.current or self._closed or self._no_body or count <= 0:
            if close:
                os.close(fd)
            if self._head_buf is not None:
                self._send(self._take_head())
            return
        if self._remaining >= 0:
            self._remaining -= count
        req.bytes_sent += count
        prefix = self._take_head()
        if self._chunked:
            prefix += b"%x\r\n" % count
        if prefix:
            self._send(prefix, more=True)
        self._wq.append(FileChunk(fd, offset, count, close))
        self._flush()
        if self._chunked:
            self._send(b"\r\n")

    def end_response(self, req: Request) -> None:
        if req is not self.current or self._closed or self._ending:
            return
        if self._remaining > 0:
            log.error("a handler ended a response %d bytes short of its Content-Length",
                      self._remaining)
            self.close()
            return
        self._ending = True
        tail = self._take_head()
        if self._chunked:
            tail += b"0\r\n\r\n"
        if tail:
            self._send(tail)
        if not self._wq:
            self._response_done()

    def abort(self, req: Request) -> None:
        if req is self.current:
            self.close()

    def detach(self, req: Request):
        if req is not self.current or self._closed:
            raise RuntimeError("the request is no longer on this connection")
        if any(isinstance(item, FileChunk) for item in self._wq):
            raise RuntimeError("cannot detach while a file is being sent")
        unsent = self._take_head() + b"".join(bytes(item) for item in self._wq)
        self._wq.clear()
        self._wq_size = 0
        self._detached = True
        if self._mask:
            self.loop.remove(self.sock)
            self._mask = 0
        if self._timer is not None:
            self.loop.cancel(self._timer)
            self._timer = None
        req.completed = True
        self.current = None
        self._closed = True
        self.server.response_sent(req)
        self.server.connection_closed(self)
        return self.sock, req.upgrade or b"", unsent

    def _response_done(self) -> None:
        req = self.current
        req.completed = True
        req.on_drain = None
        req.on_abort = None
        self.requests += 1
        self.server.response_sent(req)
        if self._closed:
            return
        self.current = None
        self._paused = False
        if not self._keep or not req.body_complete:
            # An unread body is not worth reading just to find the next request.
            self._linger()
            return
        if self.server.draining and not self.parser.ready and not self.parser.in_message:
            # The worker is stopping: this connection was kept alive before it knew.
            self._linger()
            return
        if self.parser.in_message:
            self._set_deadline(READING, self.server.params.timeout)
        else:
            self._set_deadline(IDLE, self.server.params.keepalive_timeout)
        if not self._processing:
            self._process()
        else:
            self._update_events()

    def _linger(self) -> None:
        """Close gracefully: stop writing, drain what the client still sends, then close."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()
            return
        self._set_deadline(LINGER, LINGER_SECONDS)
        self._update_events()

    # -- the socket write queue ----------------------------------------------------------
    def _send(self, data: bytes, more: bool = False) -> None:
        """Write ``data`` now if nothing is queued, else queue it; ``more``: data follows."""
        if self._closed:
            return
        if not self._wq:
            try:
                sent = self.sock.send(data, socket.MSG_MORE if more else 0)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._write_failed(exc)
                return
            if sent == len(data):
                return
            data = memoryview(data)[sent:]
        self._wq.append(data)
        self._wq_size += len(data)
        self._update_events()
        if self.current is not None and self._phase == WAITING:
            self._set_deadline(WRITING, self.server.params.timeout)

    def _flush(self) -> None:
        wq = self._wq
        sock = self.sock
        progressed = False
        try:
            while wq:
                item = wq[0]
                if isinstance(item, FileChunk):
                    sent = os.sendfile(self.fd, item.fd, item.offset,
                                       min(item.remaining, 1 << 20))
                    if sent == 0:
                        raise OSError(errno.EIO, "file shorter than announced")
                    progressed = True
                    item.offset += sent
                    item.remaining -= sent
                    if item.remaining > 0:
                        continue
                    wq.popleft()
                    if item.close:
                        os.close(item.fd)
                else:
                    sent = sock.send(item)
                    progressed = True
                    self._wq_size -= sent
                    if sent < len(item):
                        wq[0] = memoryview(item)[sent:]
                        break
                    wq.popleft()
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            self._write_failed(exc)
            return
        if progressed and self.current is not None:
            self.deadline = self.loop.time() + self.server.params.timeout
        if wq:
            if self._phase == WAITING:
                self._set_deadline(WRITING, self.server.params.timeout)
            self._update_events()
            return
        req = self.current
        if req is not None:
            if self._ending:
                self._response_done()
                return
            if self._phase == WRITING:
                self._phase = WAITING
            callback = req.on_drain
            if callback is not None:
                req.on_drain = None
                callback()
        self._update_events()

    def _write_failed(self, exc: OSError) -> None:
        if exc.errno not in _DISCONNECTED:
            log.warning("write to %s failed: %s", self.peer, exc)
        self.close()
