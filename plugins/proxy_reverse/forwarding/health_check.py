"""Active health checks (HAProxy's ``check inter rise fall``), run by one worker.

Worker 0 runs every check: each server is checked once per ``HealthCheckInterval``
whatever the number of workers, and the verdicts go to the shared
:class:`~.health_board.HealthBoard`, which every worker reads. Worker 0 always exists
(a worker that dies is replaced under its own index), and the verdicts, with the runs
of passed and failed checks, live in the board, so a replacement goes on where its
predecessor stopped. In fleet mode (docs/fleet.md) each check first takes a lease in
Redis, so that one instance of the fleet checks each server per interval, and its
results reach every instance's board.

A check is a ``GET`` of the entry's ``HealthCheck`` path on a connection of its own,
on the worker's loop: a non-blocking connect (and for an ``https://`` server a full TLS
handshake, the certificate verified as for requests), the request written through a
:class:`~monkey_py.http.stream.Stream`, the status line parsed by httptools, the
whole bounded by ``HealthCheckTimeout``. The status must be one of
``HealthCheckStatus``. The body is not read: the connection is closed after the head.
"""

from __future__ import annotations

import logging
import socket
import ssl
from functools import partial

import httptools

from monkey_py.http.stream import Stream

from .health_board import (
    BAD_STATUS, CLOSED, CONNECT_FAILED, DOWN, INVALID, PASSED, TIMED_OUT, TLS_FAILED,
    VERIFY_FAILED, HealthBoard, describe,
)

log = logging.getLogger("monkey_py.proxy_reverse")
USER_AGENT = b"monkey_py-health-check"


class Probe:
    """One check of one server: the protocol of its stream and of its response parser."""

    def __init__(self, checker: HealthChecker, upstream, loop) -> None:
        self.checker = checker
        self.upstream = upstream
        check = upstream.entry.health_check
        self.status = check.status
        spec = upstream.spec
        sock = socket.socket(spec.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        self.stream = Stream(sock, loop, self)
        self.parser = httptools.HttpResponseParser(self)
        self.request = (b"GET " + check.path.encode("latin-1") + b" HTTP/1.1\r\nHost: "
                        + upstream.authority + b"\r\nUser-Agent: " + USER_AGENT
                        + b"\r\nVia: " + checker.via + b"\r\nConnection: close\r\n\r\n")
        self.connecting = True
        self.done = False
        self.stream.arm(loop.now + check.timeout)
        # No session resumed: each check verifies the certificate afresh.
        self.stream.connect(spec.address, upstream.tls_for(self.stream, resume=False))

    def _finish(self, result: int, detail: int = 0) -> None:
        if not self.done:
            self.done = True
            self.stream.close()
            self.checker.checked(self, result, detail)

    def cancel(self) -> None:
        self.done = True
        self.stream.close()

    # -- the stream's protocol ---------------------------------------------------------
    def connected(self) -> None:
        self.connecting = False
        self.stream.write(self.request)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._finish(INVALID)

    def eof_received(self) -> None:
        self._finish(CLOSED)

    def connection_lost(self, exc: OSError) -> None:
        tls = self.stream.tls
        if self.connecting and tls is not None and tls.started:
            self._finish(TLS_FAILED, VERIFY_FAILED if isinstance(
                exc, ssl.SSLCertVerificationError) else 0)
        elif self.connecting:
            self._finish(CONNECT_FAILED, exc.errno or 0)
        else:
            self._finish(CLOSED)

    def write_drained(self) -> None:
        pass

    def timed_out(self) -> None:
        self._finish(TIMED_OUT)

    def crashed(self, exc: Exception) -> None:
        log.error("health check of %s failed", self.upstream.name, exc_info=exc)
        self._finish(INVALID)

    # -- the parser's callbacks ----------------------------------------------------------
    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status >= 200:
            self._finish(PASSED if status in self.status else BAD_STATUS, status)


class HealthChecker:
    """Checks the servers of every entry with a HealthCheck, in the worker running it."""

    def __init__(self, loop, board: HealthBoard, upstreams: list, via: bytes) -> None:
        self.loop = loop
        self.board = board
        self.upstreams = upstreams
        self.via = via
        self.timers: dict = {}
        self.probes: dict = {}
        # Fleet mode's FleetChecks: a lease before each check, the results published.
        self.fleet = None
        self.stopped = False

    def start(self) -> None:
        """First checks soon, spread over a second so they do not all leave at once."""
        count = len(self.upstreams)
        for number, upstream in enumerate(self.upstreams):
            delay = min(1.0, upstream.entry.health_check.interval) * number / max(count, 1)
            self.timers[upstream] = self.loop.call_later(delay, partial(self._run, upstream))

    def stop(self) -> None:
        self.stopped = True
        for timer in self.timers.values():
            self.loop.cancel(timer)
        for probe in list(self.probes.values()):
            probe.cancel()
        self.timers.clear()
        self.probes.clear()

    def _run(self, upstream) -> None:
        self.timers.pop(upstream, None)
        if self.fleet is None:
            self._probe(upstream)
        else:
            self.fleet.lease(upstream, self._probe, self._next)

    def _probe(self, upstream) -> None:
        if self.stopped:
            return
        probe = Probe(self, upstream, self.loop)
        if not probe.done:            # a connect refused at once ends it at once
            self.probes[upstream] = probe

    def checked(self, probe: Probe, result: int, detail: int) -> None:
        """A check ended: record it, tell the fleet, plan the next."""
        upstream = probe.upstream
        self.probes.pop(upstream, None)
        self.record(upstream, result, detail)
        if self.fleet is not None:
            self.fleet.checked(upstream, result, detail)
        self._next(upstream)

    def record(self, upstream, result: int, detail: int) -> None:
        """Count one check of ``upstream`` (made here or by another instance of the
        fleet) and say so when the verdict changes."""
        check = upstream.entry.health_check
        verdict = self.board.record(upstream.slot, result, detail, check.rise, check.fall)
        if verdict == DOWN:
            log.error("upstream %s failed %d health check(s) of %s in a row: down; last: %s",
                      upstream.name, check.fall, check.path, describe(result, detail))
        elif verdict is not None:
            log.warning("upstream %s passes its health check of %s: up", upstream.name,
                        check.path)

    def _next(self, upstream) -> None:
        """Plan the next check of ``upstream``, one interval from now."""
        if not self.stopped:
            self.timers[upstream] = self.loop.call_later(
                upstream.entry.health_check.interval, partial(self._run, upstream))
