"""Status lines, the built-in error page and the cached ``Date`` header."""

from __future__ import annotations

import html
import time
from email.utils import formatdate
from http import HTTPStatus

REASONS: dict[int, bytes] = {s.value: s.phrase.encode("latin-1") for s in HTTPStatus}
REASONS.setdefault(508, b"Loop Detected")

# Status line prefixes, built once: b"HTTP/1.1 200 OK\r\n".
STATUS_LINES: dict[int, bytes] = {
    code: b"HTTP/1.1 %d %s\r\n" % (code, reason) for code, reason in REASONS.items()
}

# Statuses whose responses never carry a body (RFC 9110 §6.4.1).
NO_BODY = frozenset({204, 304})


def status_line(status: int, reason: bytes | None = None) -> bytes:
    if reason is None:
        line = STATUS_LINES.get(status)
        if line is not None:
            return line
        reason = b"Unknown"
    return b"HTTP/1.1 %d %s\r\n" % (status, reason)


def error_page(status: int, detail: str = "", target: bytes = b"",
               signature: str = "") -> bytes:
    """A short HTML page for ``status``: an optional one-line explanation, the request
    target it answers (as Monkey's pages show it) and the server's signature. Every
    value is HTML-escaped: nothing the client sent is reflected raw."""
    reason = REASONS.get(status, b"Error").decode("latin-1")
    parts = [f"<!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>\n"
             f"<body><h1>{status} {reason}</h1>\n"]
    if detail:
        parts.append(f"<p>{html.escape(detail)}</p>\n")
    if target:
        parts.append(f"<p><code>{html.escape(target.decode('latin-1'))}</code></p>\n")
    if signature:
        parts.append(f"<hr><address>Powered by {html.escape(signature)}</address>\n")
    parts.append("</body></html>\n")
    return "".join(parts).encode("latin-1", "replace")


class DateHeader:
    """The ``Date: ...\\r\\n`` line, kept current by a loop timer at each new second."""

    __slots__ = ("line", "_loop")

    def __init__(self, loop) -> None:
        self._loop = loop
        self.line = b""
        self._tick()

    def _tick(self) -> None:
        now = time.time()
        self.line = b"Date: %s\r\n" % formatdate(int(now), usegmt=True).encode()
        # Wake just after the next second starts.
        self._loop.call_later(1.0 - now % 1.0 + 0.001, self._tick)
