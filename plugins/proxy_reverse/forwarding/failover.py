"""What a :class:`~.forward.Forward` does when an attempt fails: the events of the
upstream connection that end it, the choice between failing over and answering the
client, and charging the failures to the servers' passive health.

A failure that happened after the server received the request may be the request's
fault rather than the server's: it is charged to the server's health only once the
request succeeds elsewhere, or if it is the one server that failed it. A request that
failed on several servers is not charged to any of them (see ``Failover._settle``).
"""

from __future__ import annotations

import logging

from monkey_py.http.tls import describe_error

log = logging.getLogger("monkey_py.proxy_reverse")


class UpstreamError(Exception):
    """Why an attempt failed, and the status the client gets if no other server can serve."""

    def __init__(self, reason: str, status: int, delivered: bool) -> None:
        super().__init__(reason)
        self.status = status
        self.delivered = delivered


class Failover:
    """Failures of an attempt and failover, for Forward."""

    __slots__ = ()

    def _fail(self, error: UpstreamError) -> None:
        """The current attempt failed: account, then fail over or answer the client."""
        upstream = self.upstream
        self._release(keep=False)
        req = self.req
        reason = str(error)
        proxy = self.proxy
        proxy.count_failure(upstream, reason, self.started)
        if not error.delivered:
            proxy.charge(upstream, reason)      # it never had the request: its fault
        else:
            self._suspect(upstream, reason)
        self.last_status = error.status
        following = None
        if self.started:
            outcome, then = "the response was cut short", "cut"
        elif error.delivered and not self.replayable:
            outcome = f"answering {error.status} (a {req.method} with a body is not replayed)"
            then = "answer"
        else:
            following = self._pick()
            then = "next"
            if following is None and not self.full:
                outcome = "no server left"
            elif not self.entry.retries.allows(self):
                outcome, then = f"the retry budget is spent; answering {error.status}", "answer"
            else:
                outcome = "trying the next server" if following else "waiting for a free server"
        log.error("upstream %s (entry %s) failed for %s %s: %s; %s", upstream.name,
                  self.entry.label, req.method, req.target.decode("latin-1"), error, outcome)
        if then == "next":
            self._next(following)
        elif then == "cut":
            self._finish()
            req.abort()
        else:
            self._answer(error.status, "The upstream server failed to answer.")

    def _suspect(self, upstream, reason: str) -> None:
        """A failure after ``upstream`` had the request: charged once the request's fate
        is known (``_settle``)."""
        if self.suspects is None:
            self.suspects = [(upstream, reason)]
        else:
            self.suspects.append((upstream, reason))

    def _retried_on_status(self, status: int) -> bool:
        """The server answered ``status``, one of the entry's RetryOnStatus. The answer is
        dropped and the request goes to the next server (True) when it can be replayed,
        a server is free and the retry budget allows; else the answer is passed on as it
        is (False). Either way it counts against the server as a failure after delivery
        does: charged once the request's fate is known (see ``_settle``)."""
        upstream = self.upstream
        reason = f"answered {status}"
        self._suspect(upstream, reason)
        following = self._pick() if self.replayable else None
        if following is None or not self.entry.retries.allows(self):
            return False
        self._release(keep=False)
        self.proxy.count_failure(upstream, reason, True)
        self.last_status = status
        req = self.req
        log.error("upstream %s (entry %s) failed for %s %s: %s; trying the next server",
                  upstream.name, self.entry.label, req.method, req.target.decode("latin-1"),
                  reason)
        self._next(following)
        return True

    def _settle(self, succeeded: bool) -> None:
        """Charge the failures held back, now that the request's fate is known.

        They are the servers' fault if another server answered the same request, or if
        only one server failed it. The same request failing on several servers is taken
        as the request's fault (one that crashes or times out every server, say), so
        that it cannot take every server offline: the failures stay in the statistics
        and the error log but not in the servers' health.
        """
        suspects = self.suspects
        self.suspects = None
        if succeeded or len(suspects) == 1:
            for upstream, reason in suspects:
                self.proxy.charge(upstream, reason)
            return
        req = self.req
        log.error("%s %s failed on %d servers (%s): taken as a fault of the request, not "
                  "charged to their health", req.method, req.target.decode("latin-1"),
                  len(suspects), ", ".join(upstream.name for upstream, _ in suspects))

    def _retry_fresh(self) -> None:
        upstream = self.upstream
        self._release(keep=False)
        self._attempt(upstream, fresh=True)

    # -- events of the upstream connection ---------------------------------------------
    def upstream_lost(self, exc: OSError) -> None:
        """The socket failed: while connecting (or in the TLS handshake), sending the
        head, or later."""
        reason = describe_error(exc)
        if self.connecting:
            self._fail(UpstreamError(f"{self.conn.opening()}: {reason}", 502, False))
        elif not self.delivered:
            if self.reused:
                self._retry_fresh()  # a pooled connection the upstream had closed
            else:
                self._fail(UpstreamError(f"send: {reason}", 502, False))
        else:
            # A connection error never ends an answer, not even a close-delimited one
            # (RFC 9112 §8): what came before it may be cut.
            self._cut_off(f"{'receive' if self.request_sent else 'send'}: {reason}")

    def upstream_closed(self, reason: str) -> None:
        """The upstream closed the connection: the end of a close-delimited answer, or a
        failure."""
        if self.started and close_delimited(self.conn.received.pairs):
            self.complete(keep=False)
        else:
            self._cut_off(reason)

    def _cut_off(self, reason: str) -> None:
        """The connection ended before the answer did."""
        if self.started:
            self._fail(UpstreamError(f"{reason} in the middle of the body", 502, True))
        elif self.reused and self.replayable and self.conn.status == 0:
            self._retry_fresh()
        else:
            self._fail(UpstreamError(reason, 502, True))

    def invalid_response(self, reason: str) -> None:
        self._fail(UpstreamError(f"invalid response: {reason}", 502, True))

    def timed_out(self) -> None:
        if self.finished or self.client_paused:
            return
        if self.connecting:
            self._fail(UpstreamError(f"{self.conn.opening()} timed out", 504, False))
        elif not self.request_sent and not self.conn.stream.queue:
            # The upstream has all the body the client sent: the client is the one silent.
            self._client_failed(408, "The request body did not arrive in time.")
        else:
            self._fail(UpstreamError("read timed out", 504, True))


def close_delimited(headers) -> bool:
    """Whether an answer ends when the upstream closes (RFC 9112 §6.3): it has no
    Content-Length, and no Transfer-Encoding or one whose last coding is not chunked
    (the rule in full, though ResponseHeaders already refuses any coding but chunked)."""
    coding = None
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-length":
            return False
        if lowered == b"transfer-encoding":
            coding = value
    return coding is None or coding.rpartition(b",")[2].strip().lower() != b"chunked"
