"""One run of a CGI script: the child process and the two sockets that feed and read it.

The child gets one end of a socket pair as its standard output and, when the request
has a body, another as its standard input; the worker keeps the other ends, each a
:class:`~monkey_py.http.stream.Stream` on its loop, so nothing blocks: the body goes to
the script as it arrives (the client is paused while the script does not read), and the
script's output reaches the client as it comes (the script is not read while the client
does not). Its standard error is the server's (the error log).

The child runs without a shell, from an argument list, in its own session, so that a
timeout or a client leaving kills the script and whatever it started. Its exit is seen
through a pidfd on the loop, and it is reaped then: no zombie stays behind.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess

from monkey_py.http.stream import Stream
from monkey_py.loop import EVENT_READ

from .response import InvalidResponse, ResponseHead

log = logging.getLogger("monkey_py.cgi")
POLL_SECONDS = 0.2


class _Input:
    """The protocol of the script's standard input: the request body, with backpressure."""

    def __init__(self, run: "ScriptRun") -> None:
        self.run = run

    def data_received(self, data) -> None:
        pass

    def eof_received(self) -> None:
        self.run.input_closed()

    def connection_lost(self, exc) -> None:
        self.run.input_closed()

    def write_drained(self) -> None:
        self.run.input_drained()

    def timed_out(self) -> None:
        pass

    def crashed(self, exc) -> None:
        self.run.crashed(exc)


class ScriptRun:
    """One request's script, from spawn to reaping; the protocol of its output stream."""

    def __init__(self, runner, request, argv: list[str], env: dict, cwd: str,
                 content_type: bytes | None) -> None:
        self.runner = runner
        self.loop = runner.loop
        self.timeout = runner.timeout
        self.request = request
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.content_type = content_type
        self.head = ResponseHead()
        self.proc: subprocess.Popen | None = None
        self.output: Stream | None = None
        self.input: Stream | None = None
        self.input_ending = False
        self.done = False
        self.pidfd = -1
        self.kill_timer = None

    # -- starting ---------------------------------------------------------------------
    def start(self) -> None:
        """Spawn the script; OSError when it cannot be run."""
        request = self.request
        out_parent, out_child = socket.socketpair()
        in_parent = in_child = None
        if request.content_length:
            in_parent, in_child = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                self.argv, stdin=in_child.fileno() if in_child else subprocess.DEVNULL,
                stdout=out_child.fileno(), stderr=None, env=self.env, cwd=self.cwd,
                close_fds=True, start_new_session=True)
        except BaseException:
            for sock in (out_parent, in_parent):
                if sock is not None:
                    sock.close()
            raise
        finally:
            for sock in (out_child, in_child):
                if sock is not None:
                    sock.close()
        self.runner.running.add(self)
        self._watch_exit()
        out_parent.setblocking(False)
        self.output = Stream(out_parent, self.loop, self)
        self.output.arm(self.loop.now + self.timeout)
        self.output.update()
        request.on_abort = self.client_gone
        if in_parent is not None:
            in_parent.setblocking(False)
            self.input = Stream(in_parent, self.loop, _Input(self), reading=False)
            self.input.write_timeout = self.timeout
            request.read_body(self._body_data, self._body_end, self._body_error)

    # -- the request body to the script's standard input --------------------------------
    def _body_data(self, chunk: bytes) -> None:
        if self.input is not None and not self.input.closed and not self.input.write(chunk):
            self.request.pause_body()

    def _body_end(self) -> None:
        self.input_ending = True
        if self.input is not None and not self.input.queue:
            self.input.close()

    def _body_error(self, error) -> None:
        self.fail(error.status, error.detail)

    def input_drained(self) -> None:
        if self.input_ending:
            self.input.close()
        elif not self.done:
            self.request.resume_body()

    def input_closed(self) -> None:
        """The script stopped reading its input: the rest of the body is dropped."""
        if self.input is not None:
            self.input.close()
        if not self.done:
            self.request.resume_body()

    # -- the script's output to the client ----------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.done:
            return
        self.output.deadline = self.loop.now + self.timeout
        request = self.request
        if not self.head.complete:
            try:
                data = self.head.feed(data)
            except InvalidResponse as exc:
                self.fail(502, f"the script's answer is not a CGI response: {exc}")
                return
            if data is None:
                return
            headers = self.head.headers
            if self.content_type and not any(n.lower() == b"content-type" for n, _ in headers):
                headers = [(b"Content-Type", self.content_type), *headers]
            request.start_response(self.head.status, headers, self.head.reason)
            if not data:
                request.write(b"")
                return
        if not request.write(data):
            # The client is slow: stop reading the script; its silence is not its fault.
            self.output.set_reading(False)
            self.output.deadline = 0.0
            request.on_drain = self._client_drained

    def _client_drained(self) -> None:
        if not self.done:
            self.output.set_reading(True)
            self.output.arm(self.loop.now + self.timeout)

    def eof_received(self) -> None:
        if self.done:
            return
        if not self.head.complete:
            self.fail(502, "the script ended before the end of its headers")
            return
        self.done = True
        self.request.on_abort = None
        self.request.end()
        self._close_streams()
        self._kill_later()

    def connection_lost(self, exc) -> None:
        self.eof_received()

    def write_drained(self) -> None:
        pass

    def timed_out(self) -> None:
        log.error("cgi: %s sent nothing for %gs; killed", self.argv[-1], self.timeout)
        self.fail(504, "The script did not answer in time.")

    def crashed(self, exc: Exception) -> None:
        log.error("cgi: error while running %s: %s", self.argv[-1], exc, exc_info=exc)
        self.fail(500)

    # -- ending -------------------------------------------------------------------------
    def fail(self, status: int, detail: str = "") -> None:
        """Answer ``status`` if nothing was sent yet (else cut the response); kill."""
        if self.done:
            return
        self.done = True
        request = self.request
        request.on_abort = None
        if status == 502:
            log.error("cgi: %s: %s", self.argv[-1], detail)
        if request.response_started:
            request.abort()
        elif not request.finished:
            request.error(status, detail if status != 502 else "")
        self._close_streams()
        self.kill()

    def client_gone(self) -> None:
        self.done = True
        self._close_streams()
        self.kill()

    def _close_streams(self) -> None:
        for stream in (self.output, self.input):
            if stream is not None:
                stream.close()

    def kill(self) -> None:
        """Kill the script and everything it started (its session)."""
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _kill_later(self) -> None:
        """The script closed its output: it has ``Timeout`` seconds left to exit."""
        if self.proc.returncode is None:
            self.kill_timer = self.loop.call_later(self.timeout, self.kill)

    # -- reaping ------------------------------------------------------------------------
    def _watch_exit(self) -> None:
        try:
            self.pidfd = os.pidfd_open(self.proc.pid)
        except (AttributeError, OSError):
            self.loop.call_later(POLL_SECONDS, self._poll)  # no pidfd here: poll
            return
        self.loop.add(self.pidfd, EVENT_READ, self._exited)

    def _poll(self) -> None:
        if self.proc.poll() is None:
            self.loop.call_later(POLL_SECONDS, self._poll)
        else:
            self._reaped()

    def _exited(self, _mask: int) -> None:
        self.loop.remove(self.pidfd)
        os.close(self.pidfd)
        self.pidfd = -1
        self.proc.wait()
        self._reaped()

    def _reaped(self) -> None:
        if self.kill_timer is not None:
            self.loop.cancel(self.kill_timer)
        code = self.proc.returncode
        if code:
            log.warning("cgi: %s exited with %s", self.argv[-1],
                        f"signal {-code}" if code < 0 else f"status {code}")
        self.runner.running.discard(self)

    def stop(self) -> None:
        """The worker stops: kill and reap at once (the loop no longer runs)."""
        self.kill()
        try:
            self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
        if self.pidfd >= 0:
            os.close(self.pidfd)
