"""Forwarding one request: choose, connect, send, stream the answer back, fail over.

The steps, in order: take the next candidate the balancer names (a pooled connection, or
a non-blocking connect bounded by ConnectTimeout) -> send the head and stream the body
with backpressure -> the upstream connection parses the answer and streams it to the
client -> the connection goes back to the pool. A failure before anything reached the
client moves on to the next candidate when that is safe: always if the request never
reached an upstream, only for idempotent requests without a body otherwise.

A :class:`Forward` is the state of one request only; the socket, parser and timer
belong to the :class:`UpstreamConnection` it rides on.
"""

from __future__ import annotations

import logging

import httptools

from monkey_py.http.framing import LAST_CHUNK, chunk

from .connection import UpstreamConnection
from .headers import IDEMPOTENT, is_upgrade, request_head, response_head
from .loop_guard import LOOP_DETECTED
from .tunnel import Tunnel

log = logging.getLogger("monkey_py.proxy_reverse")


class UpstreamError(Exception):
    """Why an attempt failed, and the status the client gets if no other server can serve."""

    def __init__(self, reason: str, status: int, delivered: bool) -> None:
        super().__init__(reason)
        self.status = status
        self.delivered = delivered


class Forward:
    """One client request on its way through the proxy."""

    __slots__ = ("proxy", "entry", "settings", "req", "loop", "servers", "backups",
                 "upstream", "conn", "attempt_start", "connecting", "started", "finished",
                 "request_sent", "delivered", "replayable", "upgrade", "reused",
                 "body_paused", "client_paused", "looping", "last_status")

    def __init__(self, proxy, entry, request) -> None:
        self.proxy = proxy
        self.entry = entry
        self.settings = entry.settings
        self.req = request
        self.loop = proxy.loop
        # The balancer's order (its Server objects), then the backups: taken lazily.
        self.servers = self.backups = None
        self.upstream = None
        self.conn: UpstreamConnection | None = None
        self.attempt_start = 0.0
        self.connecting = self.started = self.finished = self.request_sent = False
        self.delivered = self.reused = self.body_paused = self.client_paused = False
        self.looping = False
        self.last_status = 502
        self.upgrade = request.upgrade is not None and is_upgrade(request)
        self.replayable = request.method in IDEMPOTENT and not request.content_length

    # -- choosing ---------------------------------------------------------------------
    def start(self) -> None:
        req = self.req
        self.servers = iter(self.entry.balancer.candidates(req))
        req.on_abort = self._client_gone
        if req.content_length:
            req.pause_body()
        self._next(self._pick())

    def _pick(self):
        """The next candidate that is online and is not this server looping; or None."""
        now = self.loop.now
        req = self.req
        primaries = self.entry.primaries
        for server in self.servers:
            upstream = primaries[server.index]
            if upstream.itself and self.proxy.loops_back(req, upstream):
                self.looping = True
            elif upstream.offline_until <= now:
                return upstream
        if self.backups is None:
            self.backups = iter(self.entry.backups)
        for upstream in self.backups:
            if upstream.itself and self.proxy.loops_back(req, upstream):
                self.looping = True
            elif upstream.offline_until <= now:
                return upstream
        return None

    def _next(self, upstream) -> None:
        """Try ``upstream``, or answer when none is left."""
        if upstream is not None:
            self._attempt(upstream, fresh=False)
        elif self.upstream is not None:
            if self.last_status == 504:
                self._answer(504, "The upstream server did not answer in time.")
            else:
                self._answer(502, "No upstream server could be reached.")
        elif self.looping:
            self._answer(LOOP_DETECTED, "Every upstream left is this server itself, "
                         "which would forward the request again.")
        else:
            self._answer(503, "Every upstream server is offline; try again later.")

    def _attempt(self, upstream, fresh: bool) -> None:
        self.upstream = upstream
        self.attempt_start = self.loop.now
        proxy = self.proxy
        entry = self.entry
        # The balancer hears of it at once (LeastConnections reads every worker's live
        # counts); the statistics count it locally.
        if entry.counts_connections and upstream.server is not None:
            entry.balancer.connection_opened(upstream.server)
        upstream.tally.active += 1
        conn = None if fresh or not upstream.idle else proxy.pool.get(upstream, not self.replayable)
        self.reused = conn is not None
        if conn is None:
            conn = UpstreamConnection(upstream, proxy.pool, self.loop)
        self.conn = conn
        conn.begin(self, self.req.method == "HEAD")
        if self.reused:
            self._send_head()
            return
        self.connecting = True
        conn.stream.arm(self.loop.now + self.settings.connect_timeout)
        conn.stream.connect(upstream.spec.address)

    def connected(self) -> None:
        self.connecting = False
        self._send_head()

    def _send_head(self) -> None:
        req = self.req
        conn = self.conn
        settings = self.settings
        stream = conn.stream
        stream.arm(self.loop.now + settings.read_timeout)
        stream.write(request_head(req, self.upstream.host_for(req), self.proxy.via,
                                  settings.forwarded_headers, req.content_length == -1,
                                  self.upgrade))
        if self.conn is not conn:
            return  # the write failed and the attempt ended with it
        self.delivered = True
        if req.content_length:
            req.read_body(self._on_body, self._on_body_end, self._on_body_error)
            if self.conn is conn and not self.body_paused:
                req.resume_body()
        else:
            self.request_sent = True

    # -- failures ---------------------------------------------------------------------
    def _fail(self, error: UpstreamError) -> None:
        """The current attempt failed: account, then fail over or answer the client."""
        upstream = self.upstream
        self._release(keep=False)
        req = self.req
        self.proxy.failed(self.entry, upstream, str(error), self.started)
        self.last_status = error.status
        following = None
        if self.started:
            outcome = "the response was cut short"
        elif error.delivered and not self.replayable:
            outcome = f"answering {error.status} (a {req.method} with a body is not replayed)"
        else:
            following = self._pick()
            outcome = "trying the next server" if following else "no server left"
        log.error("upstream %s (entry %s) failed for %s %s: %s; %s", upstream.name,
                  self.entry.label, req.method, req.target.decode("latin-1"), error, outcome)
        if self.started:
            self._finish()
            req.abort()
        elif error.delivered and not self.replayable:
            self._answer(error.status, "The upstream server failed to answer.")
        else:
            self._next(following)

    def _answer(self, status: int, detail: str) -> None:
        self._finish()
        self.req.error(status, detail)

    def _client_gone(self) -> None:
        """The client left before the response was complete: drop the upstream too."""
        if not self.finished:
            self._release(keep=False)
            self._finish()

    def _finish(self) -> None:
        self.finished = True
        req = self.req
        req.on_abort = None
        req.on_drain = None

    def _release(self, keep: bool) -> None:
        """End the attempt: pool or close the upstream connection, tell the balancer."""
        conn = self.conn
        if conn is None:
            return
        self.conn = None
        self.connecting = False
        upstream = self.upstream
        if keep:
            self.proxy.pool.put(upstream, conn)
        else:
            conn.close()
        entry = self.entry
        if entry.counts_connections and upstream.server is not None:
            entry.balancer.connection_closed(upstream.server)
        upstream.tally.active -= 1

    def crashed(self, exc: Exception) -> None:
        """A bug must cost this request only: answer it and free the upstream."""
        log.error("proxy_reverse failed on %s %s", self.req.method,
                  self.req.target.decode("latin-1"), exc_info=exc)
        if self.finished:
            return
        self._release(keep=False)
        self._finish()
        if self.started:
            self.req.abort()
        else:
            self.req.error(500)

    def _retry_fresh(self) -> None:
        upstream = self.upstream
        self._release(keep=False)
        self._attempt(upstream, fresh=True)

    # -- events of the upstream connection ---------------------------------------------
    def upstream_lost(self, exc: OSError) -> None:
        """The socket failed: while connecting, sending the head, or later."""
        reason = exc.strerror or str(exc)
        if self.connecting:
            self._fail(UpstreamError(f"connect: {reason}", 502, False))
        elif not self.delivered:
            if self.reused:
                self._retry_fresh()  # a pooled connection the upstream had closed
            else:
                self._fail(UpstreamError(f"send: {reason}", 502, False))
        else:
            self.upstream_closed(f"{'receive' if self.request_sent else 'send'}: {reason}")

    def upstream_closed(self, reason: str) -> None:
        conn = self.conn
        if self.started:
            if conn.status and _close_delimited(conn.headers):
                self.complete(keep=False)
            else:
                self._fail(UpstreamError(f"{reason} in the middle of the body", 502, True))
        elif self.reused and self.replayable and conn.status == 0:
            self._retry_fresh()
        else:
            self._fail(UpstreamError(reason, 502, True))

    def invalid_response(self, reason: str) -> None:
        self._fail(UpstreamError(f"invalid response: {reason}", 502, True))

    def timed_out(self) -> None:
        if self.finished or self.client_paused:
            return
        if self.connecting:
            self._fail(UpstreamError("connect timed out", 504, False))
        elif not self.request_sent and not self.conn.stream.queue:
            # The upstream has all the body the client sent: the client is the one silent.
            self._client_failed(408, "The request body did not arrive in time.")
        else:
            self._fail(UpstreamError("read timed out", 504, True))

    # -- the client's body -------------------------------------------------------------
    def _on_body(self, data: bytes) -> None:
        conn = self.conn
        if conn is None:
            return
        # ReadTimeout bounds the upstream's silence after the last byte it was given,
        # not the time the client takes to upload.
        conn.stream.deadline = self.loop.now + self.settings.read_timeout
        if self.req.content_length == -1:
            data = chunk(data)
        if not conn.stream.write(data) and self.conn is conn and not self.body_paused:
            self.body_paused = True
            self.req.pause_body()

    def _on_body_end(self) -> None:
        conn = self.conn
        if conn is not None:
            conn.stream.deadline = self.loop.now + self.settings.read_timeout
            if self.req.content_length == -1:
                conn.stream.write(LAST_CHUNK)
        self.request_sent = True

    def _on_body_error(self, error) -> None:
        if not self.finished:
            self._client_failed(error.status, error.detail)

    def request_drained(self) -> None:
        """The upstream took all the body queued for it: read the client again."""
        if self.body_paused:
            self.body_paused = False
            self.req.resume_body()

    def _client_failed(self, status: int, detail: str) -> None:
        """The client's body broke off or stalled: answer or cut, not blaming the upstream."""
        self._release(keep=False)
        if self.started:
            self._finish()
            self.req.abort()
        else:
            self._answer(status, detail)

    # -- the upstream's answer ----------------------------------------------------------
    @property
    def response_headers(self) -> list:
        """The upstream's response headers as received: ``(name, value)`` pairs."""
        return self.conn.headers

    def response_started(self, status: int, headers) -> None:
        if status == 101 and not self.upgrade:
            self.conn.invalid = "101 Switching Protocols was not asked for"
            raise httptools.HttpParserError(self.conn.invalid)
        self.upstream.tally.responded(self.loop.now - self.attempt_start)
        block, length = response_head(headers, self.proxy.via, status == 101)
        self.started = True
        self.req.start_response(status, block, length=length)

    def client_full(self) -> None:
        """The client's buffer is full: stop reading the upstream until it drains."""
        if self.finished:
            return
        self.client_paused = True
        self.req.on_drain = self._client_drained
        stream = self.conn.stream
        stream.set_reading(False)
        stream.deadline = 0.0

    def _client_drained(self) -> None:
        conn = self.conn
        if self.finished or conn is None:
            return
        self.client_paused = False
        conn.stream.set_reading(True)
        conn.stream.arm(self.loop.now + self.settings.read_timeout)

    def complete(self, keep: bool) -> None:
        upstream = self.upstream
        if upstream.failures:
            upstream.succeeded()
        self._release(keep=keep and self.request_sent)
        self.finished = True
        req = self.req
        req.on_abort = req.on_drain = None
        req.end()

    # -- upgrades -----------------------------------------------------------------------
    def upgraded(self, from_upstream: bytes) -> None:
        conn = self.conn
        if conn.status != 101:
            self._fail(UpstreamError("upgraded without 101", 502, True))
            return
        self.conn = None
        upstream_sock, to_upstream = conn.stream.detach()
        self._finish()
        client_sock, from_client, unsent = self.req.detach()
        proxy, entry, upstream = self.proxy, self.entry, self.upstream
        if upstream.failures:
            upstream.succeeded()
        def closed() -> None:
            if entry.counts_connections and upstream.server is not None:
                entry.balancer.connection_closed(upstream.server)
            upstream.tally.active -= 1

        Tunnel(self.loop, client_sock, upstream_sock, unsent + from_upstream,
               to_upstream + from_client, self.settings.tunnel_timeout, closed)


def _close_delimited(headers) -> bool:
    """An answer without Content-Length or Transfer-Encoding ends when the upstream closes."""
    for name, _ in headers:
        lowered = name.lower()
        if lowered == b"content-length" or lowered == b"transfer-encoding":
            return False
    return True
