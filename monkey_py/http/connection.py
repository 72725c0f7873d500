"""One client connection: a stream, a request parser and the request being answered.

Bytes from the stream go into the sans-IO :class:`RequestParser`; complete request heads
are answered one at a time, in order (pipelined ones wait in the parser's queue), each
through its own :class:`Request`, which writes its response to the stream. Between
requests the connection decides to keep the client or to close gracefully.

One deadline guards every phase (the stream's timer): Timeout while a request head
arrives, while its body arrives (between two pieces), or while a response waits on the
client; KeepAliveTimeout while idle; a short linger after the last response; none while
a handler owns the request and waits on nothing from the client.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

from .head import RequestHead
from .parser import ParseError, RequestParser
from .request import Request
from .stream import Stream
from .tls import TlsLayer

if TYPE_CHECKING:
    from ..server import Server

log = logging.getLogger(__name__)

MAX_PIPELINED = 16
LINGER_SECONDS = 2.0

# What the deadline is guarding.
IDLE, READING, BODY, WAITING, LINGER = range(5)


class Connection:
    """A client connection owned by one worker's loop; the protocol of its stream."""

    __slots__ = ("stream", "server", "loop", "params", "peer", "parser", "requests",
                 "current", "phase", "closed", "notes", "_processing", "_parse_error",
                 "_upgraded", "_body_paused", "_continue_sent", "_plain_on_tls")

    def __init__(self, sock: socket.socket, peer, server: "Server") -> None:
        self.server = server
        self.loop = server.loop
        self.params = params = server.params
        self.stream = stream = Stream(sock, self.loop, self)
        stream.write_timeout = params.timeout
        self.peer = peer
        self.parser = RequestParser(params.max_request_size)
        self.requests = 0
        self.current: Request | None = None
        self.phase = IDLE
        self.closed = False
        # Free space for plugins, keyed by plugin name.
        self.notes: dict[str, object] = {}
        self._processing = False
        self._parse_error: ParseError | None = None
        self._upgraded = False
        self._body_paused = False
        self._continue_sent = False
        self._plain_on_tls = False

    @property
    def sock(self) -> socket.socket:
        return self.stream.sock

    @property
    def secure(self) -> bool:
        """Whether the client speaks TLS on this connection."""
        return self.stream.tls is not None

    # -- lifecycle ------------------------------------------------------------------
    def start(self, tls=None) -> None:
        """Serve the connection; ``tls``: the listener's TLS context (None: plain). The
        TLS handshake, like the first request, must finish within Timeout."""
        self.stream.arm(self.loop.now + self.params.timeout)
        if tls is None:
            self.stream.update()
        else:
            TlsLayer(self.stream, tls, server_side=True).sniff()

    def close(self) -> None:
        """Close now; a response in flight is cut (its ``on_abort`` and stage 40 run)."""
        if self.closed:
            return
        self.stream.close()
        self._closed()

    def _closed(self) -> None:
        self.closed = True
        self.parser.ready.clear()
        req = self.current
        if req is not None and not req.finished:
            self._abort(req)
        self.server.connection_closed(self)

    def _abort(self, req: Request) -> None:
        """The response to ``req`` will never complete: tell its handler and stage 40."""
        req.finished = True
        callback = req.on_abort
        req.on_abort = None
        req.on_drain = None
        if callback is not None:
            try:
                callback()
            except Exception:
                log.exception("error in an abort callback")
        self.server.response_sent(req)

    # -- the stream's protocol ---------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.phase == LINGER:
            return
        parser = self.parser
        try:
            if parser.feed(data):
                self._upgraded = True
        except ParseError as exc:
            self._parse_error = exc
        if self.current is None:
            self._process()
            return
        if self.phase == BODY:
            self._body_phase()
        if (len(parser.ready) >= MAX_PIPELINED or self._upgraded
                or self._parse_error is not None):
            self._update_reading()

    def plain_on_tls_port(self) -> None:
        """The client speaks plain HTTP to a TLS listener: its request gets a clear 400."""
        self._plain_on_tls = True

    def eof_received(self) -> None:
        # The client is gone (nginx's "client closed"), or finished its linger.
        self.close()

    def connection_lost(self, exc: OSError) -> None:
        if not self.closed:
            self._closed()

    def write_drained(self) -> None:
        req = self.current
        if req is None:
            return
        if req._ending:
            self.response_done(req)
            return
        if self.phase == WAITING:
            # The handler owns the request again: no deadline until it writes.
            self.stream.deadline = 0.0
        elif self.phase == BODY:
            self._body_phase()
        callback = req.on_drain
        if callback is not None:
            req.on_drain = None
            callback()

    def crashed(self, exc: Exception) -> None:
        """A bug below one of the calls above: answer 500 if nothing was sent, else cut."""
        log.error("error while serving %s: %s", self.peer, exc, exc_info=exc)
        req = self.current
        if req is not None and not req.finished and not req.response_started:
            req.keep_alive = False
            try:
                req.error(500)
                return
            except Exception:
                log.exception("answering 500 failed too")
        self.close()

    def timed_out(self) -> None:
        if self.phase == WAITING and not self.stream.queue:
            return
        if self.phase == BODY:
            # As Monkey: a body that stops arriving gets no answer; the connection closes.
            log.info("closing %s: the body of %s %s stopped arriving", self.peer,
                     self.current.method, self.current.target.decode("latin-1"))
            self.close()
            return
        if self.phase == READING and self.current is None:
            # Slow client (slowloris): the request did not arrive within Timeout.
            self._parse_error = ParseError(408, "The request did not arrive in time.")
            self._process()
            return
        self.close()

    # -- reading ----------------------------------------------------------------------
    # The stream reads unless the request's body is paused (backpressure), the client
    # switched protocols or sent garbage, or requests are queued up to MAX_PIPELINED;
    # while lingering it reads only to drain. This is worked out when one of those changes.
    def _update_reading(self) -> None:
        reading = self.phase == LINGER or not (
            self._body_paused or self._upgraded or self._parse_error is not None
            or len(self.parser.ready) >= MAX_PIPELINED)
        if reading != self.stream.reading and not self.closed:
            self.stream.set_reading(reading)

    def set_body_paused(self, paused: bool) -> None:
        self._body_paused = paused
        self._update_reading()
        if self.current is not None and self.phase in (BODY, WAITING):
            self._body_phase()

    def _body_phase(self) -> None:
        """While a body the client owes arrives (and is not paused by its reader), Timeout
        bounds the wait for its next piece; then the handler owns the request."""
        body = self.current._body
        if body is not None and not body.done and not self._body_paused:
            self.phase = BODY
            self.stream.arm(self.loop.now + self.params.timeout)
        else:
            self.phase = WAITING
            if not self.stream.queue:
                self.stream.deadline = 0.0

    # -- dispatch ---------------------------------------------------------------------
    def _process(self) -> None:
        """Start the next queued request while none is in flight."""
        if self._processing:
            return
        self._processing = True
        ready = self.parser.ready
        try:
            while self.current is None and not self.closed and self.phase != LINGER:
                if ready:
                    self._dispatch(ready.pop(0))
                elif self._parse_error is not None and self._parse_error.head is None:
                    self._answer_parse_error()
                else:
                    if self.phase == IDLE and self.parser.in_message:
                        # A request started arriving: it has Timeout to complete.
                        self.phase = READING
                        self.stream.arm(self.loop.now + self.params.timeout)
                    break
        finally:
            self._processing = False
        if not self.stream.reading or len(ready) >= MAX_PIPELINED:
            self._update_reading()

    def _dispatch(self, head: RequestHead) -> None:
        req = self.current = Request(head, self, self.loop.now)
        self._continue_sent = False
        body = head.body
        if body is None or body.done:
            self.phase = WAITING
            self.stream.deadline = 0.0
        else:
            self._body_phase()
        if body is not None and body.error is not None:
            error = body.error
            req.site = self.server.vhosts.resolve(req.host)
            req.error(error.status, error.detail)
        elif self._plain_on_tls:
            # As nginx: a clear 400 in plain text, then the connection closes.
            req.keep_alive = False
            req.site = self.server.vhosts.resolve(req.host)
            req.error(400, "The plain HTTP request was sent to HTTPS port.")
        else:
            self.server.dispatch(req)

    def _answer_parse_error(self) -> None:
        exc = self._parse_error
        # No request could be read: an empty method and target say so to stage 40.
        req = self.current = Request(RequestHead("", b"", "1.1", [], b"", False, 0), self,
                                     self.loop.now)
        self.phase = WAITING
        self.stream.deadline = 0.0
        req.site = self.server.default_site
        req.error(exc.status, exc.detail)

    # -- the responses ------------------------------------------------------------------
    def may_keep_alive(self, req: Request) -> bool:
        """Whether the connection may stay open after ``req``'s response: the client and
        KeepAlive allow it, MaxKeepAliveRequest is not reached, the request stream is in
        step after it (its body all read, not a protocol switch) and the worker is not
        stopping. Garbage later in the stream does not close it early: the requests
        before the garbage are answered, then the garbage gets its 400 and the close."""
        body = req._body
        return (req.keep_alive and self.requests < self.params.last_keepalive_request
                and (body is None or body.done) and req.upgrade is None
                and not self.server.draining)

    def send_continue(self, req: Request) -> None:
        """``100 Continue`` for a request that expects it, once, before the body is read."""
        if (
            req is self.current and not req.response_started and not self._continue_sent
            and not req.body_complete and req.version == "1.1"
        ):
            expect = req.header(b"expect")
            if expect is not None and expect.lower() == b"100-continue":
                self._continue_sent = True
                self.stream.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def response_done(self, req: Request) -> None:
        """The last byte of ``req``'s response left: stage 40, then the next request."""
        req.finished = req.completed = True
        req.on_drain = req.on_abort = None
        self.requests += 1
        server = self.server
        if server.hooks.sent is not None:
            server.response_sent(req)
        if self.closed:
            return
        self.current = None
        parser = self.parser
        if not req._keep or server.draining and not parser.ready and not parser.in_message:
            # Nothing after a closing response is read or answered (RFC 9112 §9.6); a
            # connection kept alive before the worker began to stop ends here too.
            self._linger()
            return
        self._body_paused = False
        if parser.in_message:
            self.phase = READING
            self.stream.arm(self.loop.now + self.params.timeout)
        else:
            self.phase = IDLE
            self.stream.arm(self.loop.now + self.params.keepalive_timeout)
        if parser.ready or self._parse_error is not None:
            self._process()
        elif not self.stream.reading:
            self._update_reading()

    def _linger(self) -> None:
        """Close gracefully: stop writing, drain what the client still sends, then close."""
        self.parser.ready.clear()
        if not self.stream.shutdown_write():
            self.close()
            return
        self.phase = LINGER
        self.stream.arm(self.loop.now + LINGER_SECONDS)
        self._update_reading()

    def detach(self, req: Request):
        """Hand the socket over (see ``Request.detach``); stages 40 and 50 run now."""
        if req is not self.current or self.closed:
            raise RuntimeError("the request is no longer on this connection")
        sock, unsent = self.stream.detach()
        unsent = req._take_held() + unsent
        req.finished = req.completed = True
        req.on_drain = req.on_abort = None
        self.current = None
        self.closed = True
        self.server.response_sent(req)
        self.server.connection_closed(self)
        return sock, req.upgrade or b"", unsent
