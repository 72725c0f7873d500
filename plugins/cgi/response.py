"""The head of a CGI response (RFC 3875 §6): header lines up to a blank line.

Shared by the cgi and fastcgi plugins. ``Status: 404 Not Found`` sets the status; a
``Location`` without a ``Status`` is a redirect (302); the status defaults to 200. A
non-parsed-header script's own status line (``HTTP/1.1 200 OK``) is read too, as Monkey
does. Lines may end with LF or CRLF. Headers the server writes itself (Date, Server)
and hop-by-hop headers are dropped; the rest pass in the script's order.
"""

from __future__ import annotations

import re

MAX_HEAD = 64 * 1024
DROPPED = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer",
                     b"upgrade", b"date", b"server", b"proxy-connection"})
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_STATUS = re.compile(rb"([1-5][0-9][0-9])(?:[ \t]+(.*))?")


class InvalidResponse(Exception):
    """The script's output is not a CGI response (answer 502)."""


class ResponseHead:
    """Bytes in, until the head is complete: ``feed`` returns the body bytes after it.

    ``status``, ``reason`` and ``headers`` are set once ``complete``.
    """

    __slots__ = ("buffer", "complete", "status", "reason", "headers")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.complete = False
        self.status = 200
        self.reason: bytes | None = None
        self.headers: list[tuple[bytes, bytes]] = []

    def feed(self, data) -> bytes | None:
        """Add ``data``; the bytes after the head once it is complete, else None."""
        buffer = self.buffer
        start = max(0, len(buffer) - 3)
        buffer += data
        end, skip = _blank_line(buffer, start)
        if end < 0:
            if len(buffer) > MAX_HEAD:
                raise InvalidResponse(f"no end of the headers in the first {MAX_HEAD} bytes")
            return None
        self._parse(bytes(buffer[:end]))
        body = bytes(buffer[end + skip:])
        self.buffer = bytearray()
        self.complete = True
        return body

    def _parse(self, head: bytes) -> None:
        lines = head.replace(b"\r\n", b"\n").split(b"\n") if head else []
        status = None
        if lines and lines[0].startswith(b"HTTP/"):
            status = self._status(lines.pop(0).partition(b" ")[2])
        location = False
        for line in lines:
            name, sep, value = line.partition(b":")
            if not sep or not _TOKEN.fullmatch(name):
                raise InvalidResponse(f"malformed header line {line[:80]!r}")
            value = value.strip(b" \t")
            if _BAD_VALUE.search(value):
                raise InvalidResponse(f"control characters in header {name[:40]!r}")
            lowered = name.lower()
            if lowered == b"status":
                status = self._status(value)
            elif lowered in DROPPED:
                continue
            else:
                location = location or lowered == b"location"
                self.headers.append((name, value))
        if status is None:
            status = 302 if location else 200
        self.status = status

    def _status(self, value: bytes) -> int:
        match = _STATUS.fullmatch(value.strip())
        if match is None or int(match.group(1)) < 200:
            raise InvalidResponse(f"invalid Status {value[:40]!r}")
        self.reason = match.group(2) or None
        if self.reason is not None and any(c < 32 and c != 9 or c == 127 for c in self.reason):
            raise InvalidResponse("control characters in the Status reason")
        return int(match.group(1))


def _blank_line(buffer: bytearray, start: int) -> tuple[int, int]:
    """Where the first empty line starts (LF LF or CRLF CRLF) and its length; -1 if none."""
    lf = buffer.find(b"\n\n", start)
    crlf = buffer.find(b"\r\n\r\n", start)
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return lf, 2
    if crlf >= 0:
        return crlf, 4
    # A head with no header at all: the output starts with its blank line.
    if buffer[:1] == b"\n":
        return 0, 1
    if buffer[:2] == b"\r\n":
        return 0, 2
    return -1, 0
