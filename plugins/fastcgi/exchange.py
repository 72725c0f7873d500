"""One request through a FastCGI server: params, the body to FCGI_STDIN as it arrives,
FCGI_STDOUT parsed for the CGI head and streamed to the client, both ways with
backpressure.

Failures and their answers: the server cannot be reached (refused, no socket, no free
connection in time) -> 503; it fails once it has the request (closes early, sends what
is not FastCGI or not a CGI head) -> 502; it is silent for ``Timeout`` -> 504. Once the
response has started, any of these cuts the response instead. A request without a body
that finds a kept connection closed by the server meanwhile is sent again, once, on a
new connection.
"""

from __future__ import annotations

import logging

from monkey_py_plugins.cgi.response import InvalidResponse, ResponseHead

from . import records

log = logging.getLogger("monkey_py.fastcgi")
MAX_STDERR = 4096


class Exchange:
    __slots__ = ("server", "request", "loop", "timeout", "variables", "conn", "reused",
                 "head", "connected_once", "received", "body_started", "body_paused",
                 "done", "stderr", "retried")

    def __init__(self, server, request, variables) -> None:
        self.server = server
        self.request = request
        self.loop = server.loop
        self.timeout = server.spec.timeout
        self.variables = variables
        self.conn = None
        self.reused = self.connected_once = self.received = False
        self.body_started = self.body_paused = self.done = self.retried = False
        self.head = ResponseHead()
        self.stderr = bytearray()

    def start(self) -> None:
        request = self.request
        request.on_abort = self.client_gone
        if request.content_length:
            request.pause_body()  # read it when there is somewhere to send it
        self.server.acquire(self)

    def attach(self, conn, reused: bool) -> None:
        self.conn = conn
        self.reused = reused
        if reused:
            self.connected()

    # -- sending ------------------------------------------------------------------------
    def connected(self) -> None:
        self.connected_once = True
        stream = self.conn.stream
        stream.write_timeout = self.timeout
        stream.arm(self.loop.now + self.timeout)
        request = self.request
        head = records.begin_request(self.server.spec.keep_alive) + records.params(self.variables)
        if not request.content_length:
            stream.write(head + records.stdin(b""))
            return
        stream.write(head)
        request.read_body(self._body_data, self._body_end, self._body_error)
        request.resume_body()

    def _body_data(self, chunk: bytes) -> None:
        self.body_started = True
        if self.conn is not None and not self.conn.stream.write(records.stdin(chunk)):
            self.request.pause_body()
            self.body_paused = True

    def _body_end(self) -> None:
        if self.conn is not None:
            self.conn.stream.write(records.stdin(b""))

    def _body_error(self, error) -> None:
        self._finish(keep=False)
        if not self.request.response_started:
            self.request.error(error.status, error.detail)

    def stdin_drained(self) -> None:
        if self.body_paused and not self.done:
            self.body_paused = False
            self.request.resume_body()

    # -- receiving ----------------------------------------------------------------------
    def records(self, found) -> None:
        self.received = True
        self.conn.stream.deadline = self.loop.now + self.timeout
        for kind, content in found:
            if self.done:
                return
            if kind == records.STDOUT:
                self._stdout(content)
            elif kind == records.STDERR:
                self.stderr += content[:MAX_STDERR - len(self.stderr)]
            elif kind == records.END_REQUEST:
                self._end(content)

    def _stdout(self, data: bytes) -> None:
        if not data:
            return
        request = self.request
        if not self.head.complete:
            try:
                data = self.head.feed(data)
            except InvalidResponse as exc:
                self.server_failed(f"not a CGI answer: {exc}")
                return
            if data is None:
                return
            request.start_response(self.head.status, self.head.headers, self.head.reason)
            if not data:
                request.write(b"")
                return
        if not request.write(data):
            stream = self.conn.stream
            stream.set_reading(False)
            stream.deadline = 0.0   # waiting on the client, not on the server
            request.on_drain = self._client_drained

    def _client_drained(self) -> None:
        if not self.done:
            self.conn.stream.set_reading(True)
            self.conn.stream.arm(self.loop.now + self.timeout)

    def _end(self, content: bytes) -> None:
        try:
            _, protocol_status = records.end_request(content)
        except records.ProtocolError as exc:
            self.server_failed(str(exc))
            return
        if not self.head.complete:
            self.server_failed("the request ended without a complete CGI head")
            return
        self._log_stderr()
        request = self.request
        request.on_abort = None
        self._finish(keep=protocol_status == records.REQUEST_COMPLETE)
        request.end()

    # -- failures -------------------------------------------------------------------------
    def server_closed(self, reason: str) -> None:
        if self.done:
            return
        if not self.connected_once:
            self._finish(keep=False)
            self.server.unreachable(reason)
            self._answer(503, "The FastCGI server cannot be reached.")
            return
        if self.reused and not self.received and not self.body_started and not self.retried:
            # A kept connection the server had closed meanwhile: once more, on a new one.
            self.server.release(self.conn, keep=False)
            self.conn = None
            self.retried = True
            self.server.acquire(self)
            return
        self.server_failed(reason)

    def server_failed(self, reason: str) -> None:
        if self.done:
            return
        log.error("fastcgi: server %s failed on %s %s: %s", self.server.spec,
                  self.request.method, self.request.path.decode("latin-1"), reason)
        self._log_stderr()
        self._finish(keep=False)
        self._answer(502)

    def unavailable(self, reason: str) -> None:
        log.error("fastcgi: no connection to server %s: %s", self.server.spec, reason)
        self.done = True
        self._answer(503, "The FastCGI server is busy; try again shortly.")

    def timed_out(self) -> None:
        if not self.connected_once:
            self.server_closed(f"no connection within {self.timeout:g}s")
            return
        log.error("fastcgi: server %s sent nothing for %gs on %s", self.server.spec,
                  self.timeout, self.request.path.decode("latin-1"))
        self._finish(keep=False)
        self._answer(504)

    def crashed(self, exc: Exception) -> None:
        log.error("fastcgi: error serving %s: %s", self.request.path.decode("latin-1"), exc,
                  exc_info=exc)
        self._finish(keep=False)
        self._answer(500)

    def client_gone(self) -> None:
        if self.conn is None:
            self.server.leave_line(self)
            self.done = True
        else:
            self._finish(keep=False)

    def _finish(self, keep: bool) -> None:
        """Give the connection back (kept, or closed): the exchange is over."""
        self.done = True
        conn, self.conn = self.conn, None
        if conn is not None:
            self.server.release(conn, keep)

    def _answer(self, status: int, detail: str = "") -> None:
        request = self.request
        request.on_abort = None
        if request.finished:
            return
        if request.response_started:
            request.abort()
        else:
            request.error(status, detail)

    def _log_stderr(self) -> None:
        if self.stderr:
            log.warning("fastcgi: server %s wrote on stderr for %s: %s", self.server.spec,
                        self.request.path.decode("latin-1"),
                        self.stderr.decode("utf-8", "replace").strip())
            self.stderr.clear()
