"""The hooks of the example plugin: every hook monkey_py offers, each one observable.

Loaded with ``Load example`` (the entry point in setup.cfg points at this module).

- Every call appends one line ``<hook> pid=<pid> <detail>`` to the ``RecordTo`` file.
- Stage 10 refuses connections from the ``RefuseAddress`` addresses.
- Stage 20 denies requests carrying ``X-Example-Deny: 1`` with 403.
- Stage 30 answers ``GET /example/hello`` at once, ``GET /example/later`` from a loop
  timer, streams ``POST /example/echo`` back with backpressure, and raises on
  ``GET /example/boom`` (the server answers 500 and logs this plugin's name). A site's
  ``[HANDLERS] Match <regex> example <words>`` rule gets an answer listing the words.

The record is written synchronously, one small ``O_APPEND`` write per call, to keep the
example short; a plugin writing per request in production buffers as the logger does.
"""

from __future__ import annotations

import logging
import os
import time

from monkey_py.hookspec import hookimpl

from .settings import NAME, SECTION, Settings, read_settings

log = logging.getLogger(__name__)

TEXT = [(b"Content-Type", b"text/plain; charset=utf-8")]
LATER_SECONDS = 0.05
DENY_HEADER = b"x-example-deny"


class WorkerState:
    """What one worker process keeps between hook calls."""

    def __init__(self, settings: Settings, loop) -> None:
        self.settings = settings
        self.loop = loop


# Set by monkey_worker_start: a worker runs exactly one configuration. The master may
# hold two at once during a reload, so its hooks take the configuration as an argument.
_worker: WorkerState | None = None
# Calls noted but not written yet: monkey_site_sections comes before the configuration
# is read, and monkey_check_config must leave no trace (``monkey check`` calls it).
_unrecorded: list[str] = []


def _note(hook: str, detail: str = "") -> None:
    _unrecorded.append(f"{hook} pid={os.getpid()} {detail}".rstrip() + "\n")


def _record(settings: Settings, hook: str, detail: str = "") -> None:
    """Append the lines noted so far and this call's line to the record file."""
    _note(hook, detail)
    if settings.record_to is None:
        _unrecorded.clear()
        return
    data = "".join(_unrecorded).encode()
    _unrecorded.clear()
    try:
        fd = os.open(settings.record_to, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                     0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as exc:
        log.error("example: cannot write %s: %s", settings.record_to, exc)


def _target(request) -> str:
    return f"{request.method} {request.target.decode('latin-1')}"


# -- lifecycle: master process --------------------------------------------------------
@hookimpl
def monkey_site_sections():
    _note("monkey_site_sections")
    return [SECTION]


@hookimpl
def monkey_check_config(config):
    read_settings(config)
    _note("monkey_check_config")


@hookimpl
def monkey_configure(config):
    _record(read_settings(config), "monkey_configure")


@hookimpl
def monkey_unconfigure(config):
    _record(read_settings(config), "monkey_unconfigure")


@hookimpl
def monkey_tls_context(config):
    """Called only when the configuration has a TLS listener (``Listen 443 tls``)."""
    _record(read_settings(config), "monkey_tls_context")
    return None  # the certificates are the tls plugin's: leave it to that one


# -- lifecycle: worker processes -------------------------------------------------------
@hookimpl
def monkey_worker_start(worker):
    global _worker
    _worker = WorkerState(read_settings(worker.config), worker.loop)
    _record(_worker.settings, "monkey_worker_start", f"index={worker.index}")


@hookimpl
def monkey_instance_stopping(worker):
    """The whole instance is stopping (not a reload); the loop still runs."""
    _record(_worker.settings, "monkey_instance_stopping", f"index={worker.index}")


@hookimpl
def monkey_worker_stop(worker):
    _record(_worker.settings, "monkey_worker_stop", f"index={worker.index}")


# -- request stages -----------------------------------------------------------------------
@hookimpl
def monkey_connection_accepted(connection):
    address = connection.peer[0]
    _record(_worker.settings, "monkey_connection_accepted", address)
    if address in _worker.settings.refuse:
        return False
    return None


@hookimpl
def monkey_request_received(request):
    _record(_worker.settings, "monkey_request_received", _target(request))
    # Notes carry a plugin's data from one stage to the next; stage 40 reads this.
    request.notes[NAME] = {"started": time.monotonic(), "pauses": 0}
    if request.header(DENY_HEADER) == b"1":
        request.error(403, "Denied by the example plugin.")
        return True
    return None


@hookimpl
def monkey_request_handler(request, params):
    _record(_worker.settings, "monkey_request_handler",
            f"{_target(request)} params={','.join(params)}")
    if params:
        request.respond(200, TEXT, f"{' '.join(params)}\n".encode())
        return True
    route = ROUTES.get((request.method, request.path))
    if route is None:
        return None
    route(request)
    return True


@hookimpl
def monkey_response_sent(request):
    detail = (f"{_target(request)} status={request.status} bytes={request.bytes_sent} "
              f"completed={request.completed}")
    note = request.notes.get(NAME)
    if note is not None:
        elapsed = (time.monotonic() - note["started"]) * 1000
        detail += f" ms={elapsed:.0f} pauses={note['pauses']}"
    _record(_worker.settings, "monkey_response_sent", detail)


@hookimpl
def monkey_connection_closed(connection):
    _record(_worker.settings, "monkey_connection_closed", f"requests={connection.requests}")


# -- the handlers of stage 30 ------------------------------------------------------------
def hello(request) -> None:
    """Answer at once, with the site's greeting."""
    greeting = _worker.settings.greeting(request.site)
    request.respond(200, TEXT, f"{greeting}\n".encode())


def later(request) -> None:
    """Take the request now and answer it from a timer of the worker's loop."""
    loop = _worker.loop

    def answer() -> None:
        request.on_abort = None
        request.respond(200, TEXT, b"answered later\n")

    timer = loop.call_later(LATER_SECONDS, answer)
    # The client may leave before the timer fires: then there is nobody to answer.
    request.on_abort = lambda: loop.cancel(timer)


def echo(request) -> None:
    """Stream the request body back as it arrives, in constant memory."""
    headers = [(b"Content-Type", b"application/octet-stream")]
    if request.content_length >= 0:
        headers.append((b"Content-Length", b"%d" % request.content_length))
    request.start_response(200, headers)

    def on_data(chunk: bytes) -> None:
        if not request.write(chunk):
            # The client reads slower than it sends: stop reading until it catches up.
            request.notes[NAME]["pauses"] += 1
            request.pause_body()
            request.on_drain = request.resume_body

    request.read_body(on_data, request.end, lambda error: request.abort())


def boom(request) -> None:
    raise RuntimeError("boom: the example plugin fails on purpose")


ROUTES = {
    ("GET", b"/example/hello"): hello,
    ("GET", b"/example/later"): later,
    ("POST", b"/example/echo"): echo,
    ("GET", b"/example/boom"): boom,
}
