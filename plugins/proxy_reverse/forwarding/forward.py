"""Forwarding one request: choose, connect, send, stream the answer back, fail over.

The steps, in order: take the next candidate (``choosing.py``: the balancer's order,
offline and busy servers skipped; a pooled connection, or a non-blocking connect bounded
by ConnectTimeout) -> send the head and stream the body with backpressure -> the
upstream connection parses the answer and streams it to the client -> the connection
goes back to the pool. A failure before anything reached the client moves on to the
next candidate when that is safe (always if the request never reached an upstream, only
for idempotent requests without a body otherwise) and the retry budget allows it
(``failover.py``).

A :class:`Forward` is the state of one request only; the socket, parser and timer
belong to the :class:`UpstreamConnection` it rides on.
"""

from __future__ import annotations

import logging

import httptools

from monkey_py.http.framing import LAST_CHUNK, chunk

from .choosing import Choosing
from .connection import UpstreamConnection
from .failover import Failover, UpstreamError
from .headers import IDEMPOTENT, CodedResponse, is_upgrade, request_head
from .loop_guard import LOOP_DETECTED
from .tunnel import Tunnel

log = logging.getLogger("monkey_py.proxy_reverse")


class Forward(Choosing, Failover):
    """One client request on its way through the proxy."""

    __slots__ = ("proxy", "entry", "settings", "req", "loop", "servers", "backups",
                 "upstream", "conn", "attempt_start", "connecting", "started", "finished",
                 "request_sent", "delivered", "replayable", "upgrade", "reused",
                 "body_paused", "client_paused", "looping", "last_status", "skipped",
                 "full", "waiting", "suspects", "retrying")

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
        # Offline candidates were passed over; busy ones it may wait for; its timer in
        # the entry's queue; failures not charged yet (upstream, reason); whether it
        # counts against the retry budget.
        self.looping = self.skipped = self.retrying = False
        self.full = self.waiting = self.suspects = None
        self.last_status = 502
        self.upgrade = request.upgrade is not None and is_upgrade(request)
        self.replayable = request.method in IDEMPOTENT and not request.content_length

    # -- choosing ---------------------------------------------------------------------
    def start(self) -> None:
        req = self.req
        availability = self.entry.availability
        now = self.loop.now
        if availability.review_at <= now:
            availability.review(now)
        self.servers = iter(self.entry.balancer.candidates(req))
        req.on_abort = self._client_gone
        if req.content_length:
            req.pause_body()
        self._next(self._pick())

    def _next(self, upstream) -> None:
        """Try ``upstream``, or wait for a busy one, or answer when none is left."""
        if upstream is not None:
            self._attempt(upstream, fresh=False)
        elif self.full:
            self._wait()
        elif self.upstream is not None:
            if self.last_status == 504:
                self._answer(504, "The upstream server did not answer in time.")
            else:
                self._answer(502, "No upstream server could be reached.")
        elif self.skipped and (soonest := self._soonest()) is not None:
            # Every server is offline: rather than 503, try the one back soonest.
            self._attempt(soonest, fresh=False)
        elif self.looping:
            self._answer(LOOP_DETECTED, "Every upstream left is this server itself, "
                         "which would forward the request again.")
        else:
            self._answer(503, "The load balancer of this entry named no upstream server "
                         "for this request.")

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
        conn.connect()

    def connected(self) -> None:
        self.connecting = False
        self._send_head()

    def _send_head(self) -> None:
        req = self.req
        conn = self.conn
        settings = self.settings
        stream = conn.stream
        stream.arm(self.loop.now + settings.read_timeout)
        conn.send(request_head(req, self.upstream.host_for(req), self.proxy.via,
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

    def _answer(self, status: int, detail: str) -> None:
        self._finish()
        self.req.error(status, detail)

    def _client_gone(self) -> None:
        """The client left before the response was complete: drop the upstream too."""
        if not self.finished:
            self._release(keep=False)
            self._finish()

    def _finish(self) -> None:
        """The request is over, not by a complete response: settle its accounts."""
        self.finished = True
        req = self.req
        req.on_abort = None
        req.on_drain = None
        if self.suspects:
            self._settle(False)
        if self.retrying:
            self.entry.retries.ended(self)
        if self.waiting is not None:
            self.entry.queue.remove(self)

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
        if entry.queue is not None:
            entry.queue.slot_freed()

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

    # -- the client's body -------------------------------------------------------------
    def _on_body(self, data: bytes) -> None:
        conn = self.conn
        if conn is None:
            return
        # ReadTimeout bounds the upstream's silence after the last byte it was given,
        # not the time the client takes to upload.
        conn.request_progressed()
        if self.req.content_length == -1:
            data = chunk(data)
        if not conn.send(data) and self.conn is conn and not self.body_paused:
            self.body_paused = True
            self.req.pause_body()

    def _on_body_end(self) -> None:
        conn = self.conn
        if conn is not None:
            conn.request_progressed()
            if self.req.content_length == -1:
                conn.send(LAST_CHUNK)
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
        return self.conn.received.pairs

    def informed(self, status: int) -> None:
        """An interim (1xx) answer: the client gets it under the final answer's header
        rules (the core sends it to HTTP/1.1 clients only, and 100 Continue at most once).
        The 64 KiB bound on an answer's head, 1xx included, bounds what it queues."""
        self.req.inform(status, self._head(False))

    def response_started(self, status: int) -> None:
        if status == 101 and not self.upgrade:
            self.conn.invalid = "101 Switching Protocols was not asked for"
            raise httptools.HttpParserError(self.conn.invalid)
        block = self._head(status == 101)
        self.upstream.tally.responded(self.loop.now - self.attempt_start, status)
        retry = self.settings.retry_statuses
        failed = retry is not None and status in retry
        if failed and self._retried_on_status(status):
            return
        if self.suspects:
            self._settle(not failed)
        self.started = True
        self.req.start_response(status, block, length=self.conn.received.length)

    def _head(self, upgrade: bool) -> bytes:
        """The answer's headers as the client gets them (see ResponseHeaders.block)."""
        try:
            return self.conn.received.block(self.proxy.via, upgrade)
        except CodedResponse as exc:
            self.conn.invalid = str(exc)
            raise httptools.HttpParserError(self.conn.invalid) from None

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
        if upstream.failures or upstream.passive_until:
            self.proxy.recovered(upstream)
        self._release(keep=keep and self.request_sent)
        self.finished = True
        if self.retrying:
            self.entry.retries.ended(self)
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
        if upstream.failures or upstream.passive_until:
            proxy.recovered(upstream)

        def closed() -> None:
            if entry.counts_connections and upstream.server is not None:
                entry.balancer.connection_closed(upstream.server)
            upstream.tally.active -= 1
            if entry.queue is not None:
                entry.queue.slot_freed()

        Tunnel(self.loop, client_sock, upstream_sock, unsent + from_upstream,
               to_upstream + from_client, self.settings.tunnel_timeout, closed)
