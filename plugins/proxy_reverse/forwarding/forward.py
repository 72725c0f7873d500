"""Forwarding one request: choose, connect, send, stream the answer back, fail over.

The states, in order: try the next candidate (a pooled connection, or a non-blocking
connect bounded by ConnectTimeout) -> send the head and stream the body with
backpressure -> parse the upstream's answer with httptools and stream it to the client
-> return the connection to the pool. A failure before anything reached the client moves
on to the next candidate when that is safe: always if the request never reached an
upstream, only for idempotent requests without a body otherwise.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections import deque
from itertools import chain

import httptools

from monkey_py.loop import EVENT_READ, EVENT_WRITE

from .headers import IDEMPOTENT, is_upgrade, request_head, response_headers
from .loop_guard import LOOP_DETECTED
from .tunnel import Tunnel
from .upstreams import Channel

log = logging.getLogger("monkey_py.proxy_reverse")

RECV_SIZE = 65536
HIGH_WATER = 256 * 1024
# Bytes of an upstream's answer in a row without body bytes in them: the head (with any
# 1xx answers before it), or chunk framing and trailers. httptools buffers a header of
# any length, and the proxy drops trailers, so both must be bounded.
MAX_HEADERS_SIZE = 64 * 1024
CONNECTING, WAITING, PAUSED = range(3)


class UpstreamError(Exception):
    """Why an attempt failed, and the status the client gets if no other server can serve."""

    def __init__(self, reason: str, status: int, delivered: bool) -> None:
        super().__init__(reason)
        self.status = status
        self.delivered = delivered


class Forward:
    """One client request on its way through the proxy.

    The class attributes are the initial state; an instance gets its own value when it
    changes one (thousands of these are made per second, so they start small).
    """

    upstream = None
    sock: socket.socket | None = None
    channel: Channel | None = None
    mask = 0
    reused = False
    deadline = 0.0
    phase = CONNECTING
    wq_size = 0
    parser = None
    status = 0
    headers_size = 0
    body_seen = False
    interim = False
    started = False
    response_done = False
    upstream_keep_alive = False
    request_sent = False
    body_paused = False
    delivered = False
    finished = False
    attempt_start = 0.0
    last_status = 502
    invalid: str | None = None

    def __init__(self, proxy, entry, request) -> None:
        self.proxy = proxy
        self.entry = entry
        self.settings = entry.settings
        self.req = request
        self.loop = proxy.loop
        self.queue: deque = deque()
        self.wq: deque = deque()
        self.resp_headers: list = []
        self.upgrade = is_upgrade(request)
        self.replayable = request.method in IDEMPOTENT and not request.has_body

    # -- choosing ---------------------------------------------------------------------
    def start(self) -> None:
        entry = self.entry
        now = self.loop.time()
        primaries = entry.primaries
        queue = self.queue
        looping = False
        for upstream in chain(
            [primaries[server.index] for server in entry.balancer.candidates(self.req)],
            entry.backups,
        ):
            if upstream.itself and self.proxy.loops_back(self.req, upstream):
                looping = True
            elif upstream.offline_until <= now:
                queue.append(upstream)
        if not self.queue:
            if looping:
                self._answer(LOOP_DETECTED, "Every upstream left is this server itself, "
                             "which would forward the request again.")
            else:
                self._answer(503, "Every upstream server is offline; try again later.")
            return
        self.req.on_abort = self._client_gone
        if self.req.has_body:
            self.req.pause_body()
        self._next()

    def _next(self) -> None:
        now = self.loop.time()
        while self.queue:
            upstream = self.queue.popleft()
            if upstream.available(now):
                self._attempt(upstream, fresh=False)
                return
        if self.last_status == 504:
            self._answer(504, "The upstream server did not answer in time.")
        else:
            self._answer(502, "No upstream server could be reached.")

    def _attempt(self, upstream, fresh: bool) -> None:
        self.upstream = upstream
        self.attempt_start = self.loop.time()
        self.proxy.opened(self.entry, upstream)
        channel = None if fresh else self.proxy.pool.get(upstream, check=not self.replayable)
        if channel is not None:
            self.reused = True
            channel.handler = self._on_event
            self.channel = channel
            self.mask = EVENT_READ  # the pool keeps its sockets registered for reading
            self._connected(channel.sock)
            return
        self.reused = False
        spec = upstream.spec
        sock = self.sock = socket.socket(spec.family, socket.SOCK_STREAM)
        self.channel = Channel(sock, self._on_event)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex(spec.address)
        if err == 0:
            self._connected(sock)
        elif err in (errno.EINPROGRESS, errno.EAGAIN):
            self._register(EVENT_WRITE)
            self._arm(CONNECTING, self.settings.connect_timeout)
        else:
            self._fail(UpstreamError(f"connect: {os.strerror(err)}", 502, False))

    # -- failures ---------------------------------------------------------------------
    def _fail(self, error: UpstreamError) -> None:
        """The current attempt failed: account, then fail over or answer the client."""
        upstream = self.upstream
        self._release(keep=False)
        req = self.req
        self.proxy.failed(self.entry, upstream, str(error), self.started)
        self.last_status = error.status
        if self.started:
            outcome = "the response was cut short"
        elif error.delivered and not self.replayable:
            outcome = f"answering {error.status} (a {req.method} with a body is not replayed)"
        elif self.queue:
            outcome = "trying the next server"
        else:
            outcome = "no server left"
        log.error("upstream %s (entry %s) failed for %s %s: %s; %s", upstream.name,
                  self.entry.label, req.method, req.target.decode("latin-1"), error, outcome)
        if self.started:
            self._finish()
            req.abort()
        elif error.delivered and not self.replayable:
            self._answer(error.status, "The upstream server failed to answer.")
        else:
            self._next()

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
        self.req.on_abort = None
        self.req.on_drain = None
        if self.channel is not None:
            self.channel.alarm = None

    def _release(self, keep: bool) -> None:
        """End the attempt: pool or close the upstream socket, tell the balancer."""
        sock = self.sock
        if sock is None:
            return
        self.sock = None
        channel = self.channel
        channel.alarm = None
        self.wq.clear()
        self.wq_size = 0
        self.parser = None
        if keep:
            self.proxy.pool.put(self.upstream, channel, self.mask)
        else:
            channel.close(self.loop, registered=bool(self.mask))
        self.mask = 0
        self.channel = None
        self.proxy.closed(self.entry, self.upstream)

    # -- timers -----------------------------------------------------------------------
    # The timer lives on the upstream connection's channel and outlasts the request:
    # it is re-armed only when it fires early, so a request on a pooled connection
    # usually schedules nothing.
    def _arm(self, phase: int, seconds: float) -> None:
        self.phase = phase
        deadline = self.deadline = self.loop.time() + seconds
        channel = self.channel
        channel.alarm = self._on_timer
        timer = channel.timer
        if timer is None or timer.when > deadline:
            if timer is not None:
                self.loop.cancel(timer)
            channel.timer = self.loop.call_at(deadline, channel.ring)

    def _on_timer(self) -> None:
        if self.finished or self.phase == PAUSED:
            return
        if self.deadline > self.loop.time():
            self.channel.timer = self.loop.call_at(self.deadline, self.channel.ring)
        elif self.phase == CONNECTING:
            self._fail(UpstreamError("connect timed out", 504, False))
        elif not self.request_sent and not self.wq:
            # The upstream has all the body the client sent: the client is the one silent.
            self._client_failed(408, "The request body did not arrive in time.")
        else:
            self._fail(UpstreamError("read timed out", 504, True))

    # -- the upstream socket ---------------------------------------------------------
    def _register(self, mask: int) -> None:
        if mask == self.mask or self.sock is None:
            return
        if not mask:
            self.loop.remove(self.sock)
        elif not self.mask:
            self.loop.add(self.sock, mask, self.channel)
        else:
            self.loop.modify(self.sock, mask, self.channel)
        self.mask = mask

    def _update_events(self) -> None:
        reading = not (self.phase == PAUSED or self.response_done)
        self._register((EVENT_READ if reading else 0) | (EVENT_WRITE if self.wq else 0))

    def _on_event(self, mask: int) -> None:
        try:
            self._handle_event(mask)
        except Exception:
            # A bug must cost this request only: answer it and free the upstream.
            log.exception("proxy_reverse failed on %s %s", self.req.method,
                          self.req.target.decode("latin-1"))
            self._crashed()

    def _crashed(self) -> None:
        if self.finished:
            return
        self._release(keep=False)
        self._finish()
        if self.started:
            self.req.abort()
        else:
            self.req.error(500)

    def _handle_event(self, mask: int) -> None:
        if self.phase == CONNECTING and self.parser is None:
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._fail(UpstreamError(f"connect: {os.strerror(err)}", 502, False))
            else:
                self._connected(self.sock)
            return
        if mask & EVENT_WRITE:
            self._flush()
        if mask & EVENT_READ and self.sock is not None:
            self._on_readable()

    def _connected(self, sock: socket.socket) -> None:
        self.sock = sock
        req = self.req
        settings = self.settings
        host = upstream_host(req, settings, self.upstream)
        head = request_head(req, host, self.proxy.via, settings.forwarded_headers,
                            req.content_length == -1, self.upgrade)
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.resp_headers = []
        self.headers_size = 0
        self.interim = False
        self.delivered = False
        self._arm(WAITING, settings.read_timeout)
        self._send(head)
        if self.sock is None:
            return
        if req.has_body:
            req.read_body(self._on_body, self._on_body_end, self._on_body_error)
            req.resume_body()
        else:
            self.request_sent = True
        self._update_events()

    def _send(self, data: bytes) -> None:
        if not self.wq:
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._broken(exc)
                return
            if sent:
                self.delivered = True
            if sent == len(data):
                return
            data = data[sent:]
        self.wq.append(data)
        self.wq_size += len(data)
        self._update_events()

    def _flush(self) -> None:
        wq = self.wq
        try:
            while wq:
                sent = self.sock.send(wq[0])
                self.delivered = True
                self.wq_size -= sent
                if sent < len(wq[0]):
                    wq[0] = wq[0][sent:]
                    break
                wq.popleft()
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            self._broken(exc)
            return
        if self.body_paused and self.wq_size <= HIGH_WATER:
            self.body_paused = False
            self.req.resume_body()
        self._update_events()

    def _broken(self, exc: OSError) -> None:
        """The upstream connection broke while sending; a stale pooled one is retried."""
        if self.reused and not self.delivered:
            self._retry_fresh()
        else:
            self._fail(UpstreamError(f"send: {exc.strerror or exc}", 502, self.delivered))

    def _retry_fresh(self) -> None:
        upstream = self.upstream
        self._release(keep=False)
        self._attempt(upstream, fresh=True)

    # -- the client's body -------------------------------------------------------------
    def _on_body(self, chunk: bytes) -> None:
        if self.sock is None:
            return
        # ReadTimeout bounds the upstream's silence after the last byte it was given,
        # not the time the client takes to upload.
        self.deadline = self.loop.time() + self.settings.read_timeout
        if self.req.content_length == -1:
            chunk = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        self._send(chunk)
        if self.wq_size > HIGH_WATER and not self.body_paused:
            self.body_paused = True
            self.req.pause_body()

    def _on_body_end(self) -> None:
        self.deadline = self.loop.time() + self.settings.read_timeout
        if self.sock is not None and self.req.content_length == -1:
            self._send(b"0\r\n\r\n")
        self.request_sent = True

    def _on_body_error(self, error) -> None:
        if not self.finished:
            self._client_failed(error.status, error.detail)

    def _client_failed(self, status: int, detail: str) -> None:
        """The client's body broke off or stalled: answer or cut, not blaming the upstream."""
        self._release(keep=False)
        if self.started:
            self._finish()
            self.req.abort()
        else:
            self._answer(status, detail)

    # -- the upstream's answer ----------------------------------------------------------
    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._upstream_closed(f"receive: {exc.strerror or exc}")
            return
        if not data:
            self._upstream_closed("the upstream closed the connection")
            return
        self.deadline = self.loop.time() + self.settings.read_timeout
        self.body_seen = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._tunnel(data[exc.args[0]:])
            return
        except httptools.HttpParserError as exc:
            if not self.finished:
                # httptools wraps a callback's own error; say what it was.
                reason = self.invalid or str(exc)
                self._fail(UpstreamError(f"invalid response: {reason}", 502, True))
            return
        if self.finished:
            return
        if self.body_seen:
            self.headers_size = 0
        else:
            self.headers_size += len(data)
            if self.headers_size > MAX_HEADERS_SIZE:
                self._fail(UpstreamError(f"invalid response: over {MAX_HEADERS_SIZE} bytes of "
                                         "headers or trailers", 502, True))
                return
        if self.started and not self.response_done and (
            self.req.method == "HEAD" or self.status in (204, 304)
        ):
            self.upstream_keep_alive = self.parser.should_keep_alive()
            self.response_done = True
        if self.response_done:
            self._complete(keep=self.upstream_keep_alive)

    def _upstream_closed(self, reason: str) -> None:
        if self.started:
            if self.status and self._close_delimited():
                self._complete(keep=False)
            else:
                self._fail(UpstreamError(f"{reason} in the middle of the body", 502, True))
        elif self.reused and self.replayable and self.status == 0:
            self._retry_fresh()
        else:
            self._fail(UpstreamError(reason, 502, True))

    def _close_delimited(self) -> bool:
        for name, _ in self.resp_headers:
            lowered = name.lower()
            if lowered == b"content-length" or lowered == b"transfer-encoding":
                return False
        return True

    def on_header(self, name: bytes, value: bytes) -> None:
        self.resp_headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.interim = True
            self.resp_headers = []
            return
        if status == 101 and not self.upgrade:
            self.invalid = "101 Switching Protocols was not asked for"
            raise httptools.HttpParserError(self.invalid)
        self.status = status
        self.proxy.responded(self.entry, self.upstream, self.loop.time() - self.attempt_start)
        headers, length = response_headers(self.resp_headers, self.proxy.via, status == 101)
        self.started = True
        self.req.start_response(status, headers, length=length)

    def on_body(self, body: bytes) -> None:
        self.body_seen = True
        if not self.req.write(body) and not self.finished:
            self.phase = PAUSED
            self.req.on_drain = self._client_drained
            self._update_events()

    def _client_drained(self) -> None:
        if self.finished or self.sock is None:
            return
        self._arm(WAITING, self.settings.read_timeout)
        self._update_events()

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        # llhttp forgets the message's keep-alive flag once the callback returns.
        self.upstream_keep_alive = self.parser.should_keep_alive()
        self.response_done = True

    def _complete(self, keep: bool) -> None:
        upstream = self.upstream
        self.proxy.upstream_ok(upstream)
        self._release(keep=keep and self.request_sent)
        self._finish()
        self.req.end()

    # -- upgrades -----------------------------------------------------------------------
    def _tunnel(self, from_upstream: bytes) -> None:
        if self.status != 101:
            self._fail(UpstreamError("upgraded without 101", 502, True))
            return
        upstream_sock, self.sock = self.sock, None
        if self.mask:
            self.loop.remove(upstream_sock)
            self.mask = 0
        channel = self.channel
        if channel.timer is not None:
            self.loop.cancel(channel.timer)
            channel.timer = None
        self._finish()
        client_sock, from_client, unsent = self.req.detach()
        entry, upstream = self.entry, self.upstream
        self.proxy.upstream_ok(upstream)
        Tunnel(self.loop, client_sock, upstream_sock, unsent + from_upstream, from_client,
               self.settings.tunnel_timeout, lambda: self.proxy.closed(entry, upstream))


def upstream_host(request, settings, upstream) -> bytes:
    """The Host header the upstream gets: the client's, or the upstream's own address."""
    if settings.preserve_host and request.host:
        return request.host
    spec = upstream.spec
    if spec.family == socket.AF_INET6:
        return f"[{spec.host}]:{spec.port}".encode()
    return f"{spec.host}:{spec.port}".encode()
