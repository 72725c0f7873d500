"""A connection to one upstream server, kept across requests.

It owns what outlives a request: its stream (socket, registration, timer), its response
parser and the parser's callbacks, bound once. It carries one :class:`Forward` at a
time, whose client gets the response as it is parsed; between requests it waits in
its upstream's pool, still registered for reading, so that the upstream closing it is
noticed at once.
"""

from __future__ import annotations

import socket

import httptools

from monkey_py.http.stream import Stream

from .headers import ResponseHeaders

# Bytes of an upstream's answer in a row without body bytes in them: the head (with any
# 1xx answers before it), or chunk framing and trailers. httptools buffers a header of
# any length, and the proxy drops trailers, so both must be bounded.
MAX_HEADERS_SIZE = 64 * 1024


class UpstreamConnection:
    """The protocol of one upstream socket's stream, and its response parser's."""

    __slots__ = ("stream", "loop", "upstream", "pool", "parser", "read_timeout", "fwd", "client",
                 "received", "on_header", "status", "interim", "interim_deadline", "done", "keep",
                 "head_only", "head_bytes", "body_seen", "invalid", "since", "session_due")

    def __init__(self, upstream, pool, loop) -> None:
        spec = upstream.spec
        sock = socket.socket(spec.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.stream = Stream(sock, loop, self)
        self.loop = loop
        self.upstream = upstream
        self.pool = pool
        # The answer's headers, sorted as they arrive: the parser's on_header is theirs.
        self.received = ResponseHeaders()
        self.on_header = self.received.add
        self.parser = httptools.HttpResponseParser(self)
        # ReadTimeout bounds the upstream's silence, and any wait to write to it.
        self.read_timeout = self.stream.write_timeout = upstream.entry.read_timeout
        self.fwd = None
        self.client = None
        self.status = self.head_bytes = 0
        self.interim = self.done = self.keep = self.head_only = self.body_seen = False
        # The deadline for the final answer once a 1xx came (0.0: none came).
        self.interim_deadline = 0.0
        self.invalid: str | None = None
        # While idle in the pool: since when.
        self.since = 0.0
        # Its TLS session is to be kept for the next connection, once the first answer
        # is in (a TLS 1.3 server sends its session ticket after the handshake).
        self.session_due = False

    def connect(self) -> None:
        """Open the connection: TCP, then the TLS handshake to an https:// server;
        ``fwd.connected()`` follows, or ``fwd.upstream_lost(exc)``."""
        upstream = self.upstream
        tls = upstream.tls_for(self.stream)
        self.session_due = tls is not None
        self.stream.connect(upstream.spec.address, tls)

    def opening(self) -> str:
        """The step of opening that is under way: ``connect`` or ``TLS handshake``."""
        tls = self.stream.tls
        return "TLS handshake" if tls is not None and tls.started else "connect"

    def begin(self, fwd, head_only: bool) -> None:
        """Carry ``fwd`` now; ``head_only``: its answer has no body (HEAD)."""
        self.fwd = fwd
        self.client = fwd.req
        self.received.reset()
        self.status = self.head_bytes = 0
        self.interim = self.done = self.body_seen = False
        self.interim_deadline = 0.0
        self.head_only = head_only

    def request_progressed(self) -> None:
        """The upstream was given more of the request: ReadTimeout runs afresh from now,
        and the next interim answer may restart it once more."""
        self.stream.deadline = self.loop.now + self.read_timeout
        self.interim_deadline = 0.0

    def release(self) -> None:
        """The exchange is over; the connection is idle (or about to be closed)."""
        self.fwd = self.client = None
        self.stream.deadline = 0.0

    def close(self) -> None:
        self.fwd = self.client = None
        self.stream.close()

    def send(self, data: bytes) -> bool:
        """Write ``data`` to the upstream, counted in its bytes out; False when the
        stream's buffer is full (wait for ``write_drained``)."""
        self.upstream.tally.bytes_out += len(data)
        return self.stream.write(data)

    # -- the stream's protocol -----------------------------------------------------------
    def connected(self) -> None:
        self.fwd.connected()

    def data_received(self, data: bytes) -> None:
        fwd = self.fwd
        if fwd is None:
            # An idle connection is not spoken to: whatever this is, it is not ours.
            self.pool.drop(self.upstream, self)
            return
        self.stream.deadline = self.loop.now + self.read_timeout
        self.upstream.tally.bytes_in += len(data)
        self.body_seen = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            fwd.upgraded(data[exc.args[0]:])
            return
        except httptools.HttpParserError as exc:
            if self.fwd is fwd:
                # httptools wraps a callback's own error; say what it was.
                fwd.invalid_response(self.invalid or str(exc))
            return
        if self.fwd is not fwd:
            return
        if self.body_seen:
            self.head_bytes = 0
        else:
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEADERS_SIZE:
                fwd.invalid_response(f"over {MAX_HEADERS_SIZE} bytes of headers or trailers")
                return
        if self.status and self.head_only and not self.done:
            # llhttp does not know a HEAD was asked: it waits for a body that will not
            # come. The answer is complete; the parser starts afresh for the next one.
            self.keep = self.parser.should_keep_alive()
            self.done = True
            self.parser = httptools.HttpResponseParser(self)
        if self.done:
            fwd.complete(self.keep)

    def eof_received(self) -> None:
        if self.fwd is None:
            self.pool.drop(self.upstream, self)
        else:
            self.fwd.upstream_closed("the upstream closed the connection")

    def connection_lost(self, exc: OSError) -> None:
        if self.fwd is None:
            self.pool.drop(self.upstream, self)
        else:
            self.fwd.upstream_lost(exc)

    def write_drained(self) -> None:
        if self.fwd is not None:
            self.fwd.request_drained()

    def timed_out(self) -> None:
        if self.fwd is not None:
            self.fwd.timed_out()

    def crashed(self, exc: Exception) -> None:
        if self.fwd is not None:
            self.fwd.crashed(exc)
        else:
            self.pool.drop(self.upstream, self)

    # -- the response parser's callbacks ------------------------------------------------
    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200 and status != 101:
            # An interim answer. The first one (since the last request bytes) starts
            # ReadTimeout afresh; those after it do not, so an upstream that sends only
            # 1xx still times out.
            self.interim = True
            stream = self.stream
            if self.interim_deadline:
                stream.deadline = self.interim_deadline
            else:
                self.interim_deadline = stream.deadline
            if self.fwd is not None:
                self.fwd.informed(status)
            self.received.reset()
            return
        self.status = status
        if self.fwd is not None:
            self.fwd.response_started(status)

    def on_body(self, body: bytes) -> None:
        self.body_seen = True
        client = self.client
        if client is not None and not client.write(body) and self.fwd is not None:
            self.fwd.client_full()

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        # llhttp forgets the message's keep-alive flag once the callback returns.
        self.keep = self.parser.should_keep_alive()
        self.done = True
        if self.session_due:
            self.session_due = False
            self.upstream.tls_session = self.stream.tls.sock.session
