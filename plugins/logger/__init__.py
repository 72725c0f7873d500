"""The access log: one line per response in the combined log format.

A site turns it on with ``[LOGGER] AccessLog path``. Lines are buffered in each worker
and written with one ``write`` when the buffer fills, once a second, and when the worker
stops, so the loop never waits on the disk per request. Files are opened with O_APPEND:
workers' writes never interleave within a line. Fields are escaped as Apache does, so a
client cannot forge a line or a field.
"""

from __future__ import annotations

import logging
import os
import re
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
    filename = read_section(sections[0], _keys(config))["access_log"]
    if filename is not None and not filename.parent.is_dir():
        raise ConfigError(
            f"AccessLog {filename}: directory {filename.parent} does not exist; create it "
            "or name a file in an existing directory (relative paths start at the "
            "configuration directory)",
            sections[0].get("AccessLog").location,
        )
    return filename


class AccessLog:
    """Buffered lines for one file, shared by every site that names it."""

    def __init__(self, filename) -> None:
        self.filename = filename
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
        data = memoryview(b"".join(self.lines))
        self.lines.clear()
        self.size = 0
        try:
            while data:
                data = data[os.write(self.fd, data):]
        except OSError as exc:
            log.error("cannot write the access log %s: %s", self.filename, exc)

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
                try:
                    self.files[key] = AccessLog(filename)
                except OSError as exc:
                    log.error("cannot open the access log %s of site %s: %s; its requests "
                              "are not logged", filename, site.name, exc)
                    continue
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

    def timestamp(self, request) -> bytes:
        """When the request arrived (combined format's %t), cached per second."""
        second = int(time.time() - (self.loop.time() - request.start_time))
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(second)).encode()
        return self._stamp

    def log(self, request) -> None:
        access_log = self.by_site.get(id(request.site))
        if access_log is None:
            return
        peer = request.conn.peer if request.conn is not None else None
        address = peer[0].encode() if isinstance(peer, tuple) else b"-"
        referer = request.header(b"referer") or b"-"
        agent = request.header(b"user-agent") or b"-"
        if request.method:
            request_line = b"%s %s HTTP/%s" % (
                request.method.encode(), _quote(request.target), request.version.encode())
        else:
            request_line = b"-"  # nothing parsable arrived (Apache and nginx log "-")
        line = b'%s - - %s "%s" %d %s "%s" "%s"\n' % (
            address, self.timestamp(request), request_line, request.status,
            b"%d" % request.bytes_sent if request.bytes_sent else b"-",
            _quote(referer), _quote(agent),
        )
        access_log.add(line)


# Apache's escaping of logged strings: quote and backslash get a backslash, the usual
# control characters their C escape, every other byte outside printable ASCII \xhh.
_ESCAPES = {c: b"\\x%02x" % c for c in (*range(32), *range(127, 256))}
_ESCAPES.update({ord('"'): b'\\"', ord("\\"): b"\\\\", 8: b"\\b", 9: b"\\t", 10: b"\\n",
                 11: b"\\v", 13: b"\\r"})
_UNSAFE = re.compile(rb'[\x00-\x1f\x7f-\xff"\\]')


def _quote(value: bytes) -> bytes:
    """Escape what would break a log line or its fields, as Apache's log escaping does."""
    return _UNSAFE.sub(lambda match: _ESCAPES[match.group()[0]], value)


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
