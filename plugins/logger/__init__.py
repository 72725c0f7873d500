"""The access log: one line per response in the combined log format.

A site turns it on with ``[LOGGER] AccessLog path``. Lines are buffered in each worker
and written with one ``write`` when the buffer fills, once a second, and when the worker
stops, so the loop never waits on the disk per request. Files are opened with O_APPEND:
workers' writes never interleave within a line.
"""

from __future__ import annotations

import logging
import os
import time

from monkey_py.config import ConfigError, Key, read_section
from monkey_py.config.values import path
from monkey_py.hookspec import hookimpl

log = logging.getLogger(__name__)

SECTION = "LOGGER"
FLUSH_BYTES = 64 * 1024
FLUSH_SECONDS = 1.0


def _keys(config):
    return [Key("AccessLog", path(config.directory), default=None)]


def _access_log(config, site):
    sections = site.sections.get(SECTION)
    if not sections:
        return None
    return read_section(sections[0], _keys(config))["access_log"]


class AccessLog:
    """Buffered lines for one file, shared by every site that names it."""

    def __init__(self, filename) -> None:
        self.fd = os.open(filename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.lines: list[bytes] = []
        self.size = 0

    def add(self, line: bytes) -> None:
        self.lines.append(line)
        self.size += len(line)
        if self.size >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.lines:
            return
        data = b"".join(self.lines)
        self.lines.clear()
        self.size = 0
        try:
            os.write(self.fd, data)
        except OSError as exc:
            log.error("cannot write the access log: %s", exc)

    def close(self) -> None:
        self.flush()
        os.close(self.fd)


class Logger:
    """Per-worker state: the open logs by site."""

    def __init__(self) -> None:
        self.by_site: dict[int, AccessLog] = {}
        self.files: dict[str, AccessLog] = {}
        self.loop = None
        self._second = -1
        self._stamp = b""

    def start(self, worker) -> None:
        self.loop = worker.loop
        for site in worker.config.sites:
            filename = _access_log(worker.config, site)
            if filename is None:
                continue
            key = str(filename)
            if key not in self.files:
                self.files[key] = AccessLog(filename)
            self.by_site[id(site)] = self.files[key]
        if self.files:
            self.loop.call_later(FLUSH_SECONDS, self._tick)

    def _tick(self) -> None:
        for access_log in self.files.values():
            access_log.flush()
        self.loop.call_later(FLUSH_SECONDS, self._tick)

    def stop(self) -> None:
        for access_log in self.files.values():
            access_log.close()
        self.files.clear()
        self.by_site.clear()

    def timestamp(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._stamp = time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(now)).encode()
        return self._stamp

    def log(self, request) -> None:
        access_log = self.by_site.get(id(request.site))
        if access_log is None:
            return
        peer = request.conn.peer if request.conn is not None else None
        address = peer[0].encode() if isinstance(peer, tuple) else b"-"
        referer = request.header(b"referer") or b"-"
        agent = request.header(b"user-agent") or b"-"
        line = b'%s - - %s "%s %s HTTP/%s" %d %s "%s" "%s"\n' % (
            address, self.timestamp(), request.method.encode(), _quote(request.target),
            request.version.encode(), request.status,
            b"%d" % request.bytes_sent if request.bytes_sent else b"-",
            _quote(referer), _quote(agent),
        )
        access_log.add(line)


def _quote(value: bytes) -> bytes:
    """Escape what would break a log line: quotes, backslashes and control bytes."""
    if b'"' in value or b"\\" in value or any(c < 32 or c == 127 for c in value):
        return b"".join(
            b"\\x%02x" % c if c < 32 or c == 127 or c in b'"\\' else bytes((c,)) for c in value
        )
    return value


_state = Logger()


@hookimpl
def monkey_site_sections():
    return [SECTION]


@hookimpl
def monkey_check_config(config):
    for site in config.sites:
        sections = site.sections.get(SECTION, [])
        if len(sections) > 1:
            raise ConfigError(f"[{SECTION}] appears twice in site {site.name}",
                              sections[1].location)
        _access_log(config, site)


@hookimpl
def monkey_worker_start(worker):
    _state.start(worker)


@hookimpl
def monkey_worker_stop(worker):
    _state.stop()


@hookimpl
def monkey_response_sent(request):
    _state.log(request)
