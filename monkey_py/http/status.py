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


def error_page(status: int, detail: str = "") -> bytes:
    """A short HTML page for ``status``, with an optional one-line explanation."""
    reason = REASONS.get(status, b"Error").decode("latin-1")
    text = f"<p>{html.escape(detail)}</p>\n" if detail else ""
    return (
        f"<!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>\n"
        f"<body><h1>{status} {reason}</h1>\n{text}</body></html>\n"
    ).encode()


class DateHeader:
    """``Date: ...\\r\\n`` formatted at most once per second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def __call__(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = b"Date: %s\r\n" % formatdate(now, usegmt=True).encode()
        return self._value
