"""Answering a client from a stored response: 200 (or the stored status), HEAD, 304 to
the client's own conditional request, and byte ranges (206, 416).

A ``Summary`` is computed once per stored response and kept: its freshness lifetime,
its age when received, whether it is ``no-cache``, and its header block encoded for the
wire. A hit then costs an age computation and one ``respond()`` (memory) or a
``sendfile`` (disk), without parsing anything stored.

Served headers are the stored ones less ``Age`` and ``Content-Length`` (rewritten),
``Server`` (the server writes its own) and ``Via``, which is written once with this
proxy's own token appended, as on a miss. The stored ``Date`` (the origin's, RFC 9110
§6.6.1) goes first, where the server keeps a handler's own Date instead of writing the
time of sending, and ``Age`` says how old the response is.
"""

from __future__ import annotations

import secrets

from monkey_py.static.conditional import if_range_allows
from monkey_py.static.ranges import (
    Unsatisfiable,
    content_range,
    multipart_byteranges,
    parse_range,
    unsatisfied_content_range,
)

from .rules.control import header_value, last_modified, response_cache_control
from .rules.fields import NOT_MODIFIED_FIELDS, age_header
from .rules.policy import current_age, freshness_lifetime
from .rules.validation import client_not_modified
from .stores.store import Stored

_NOT_SERVED = frozenset({b"age", b"content-length", b"content-range", b"date", b"server",
                         b"via"})
SUMMARY_CACHE_SIZE = 4096


class Summary:
    """What serving a stored response needs, computed once from its head."""

    __slots__ = ("status", "lifetime", "initial_age", "response_time", "no_cache", "head",
                 "not_modified_head", "etag", "modified", "content_type")

    def __init__(self, stored: Stored, via: bytes, targets=()) -> None:
        headers = stored.headers
        self.status = stored.status
        self.lifetime = freshness_lifetime(stored.status, headers, stored.response_time,
                                           targets)
        # The age it had when received: current_age at that instant.
        self.initial_age = current_age(stored, stored.response_time)
        self.response_time = stored.response_time
        self.no_cache = "no-cache" in response_cache_control(headers, targets)
        vias = []
        lines = []
        validators = []
        date = b""
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"via":
                vias.append(value)
            elif lowered == b"date":
                if not date:
                    date = b"Date: %s\r\n" % value
            elif lowered not in _NOT_SERVED:
                line = b"%s: %s\r\n" % (name, value)
                lines.append(line)
                if lowered in NOT_MODIFIED_FIELDS:
                    validators.append(line)
        via_line = b"Via: %s\r\n" % b", ".join([*vias, via])
        self.head = date + b"".join(lines) + via_line
        self.not_modified_head = date + b"".join(validators) + via_line
        etag = header_value(headers, b"etag")
        self.etag = "" if etag is None else etag.strip(b" \t").decode("latin-1")
        modified = last_modified(headers)
        self.modified = -1.0 if modified is None else modified
        content_type = header_value(headers, b"content-type")
        self.content_type = ("application/octet-stream" if content_type is None
                             else content_type.decode("latin-1"))

    def age(self, now: float) -> float:
        """The current age (RFC 9111 §4.2.3) at ``now``."""
        resident = now - self.response_time
        return self.initial_age + resident if resident > 0 else self.initial_age


class Summaries:
    """Summaries by stored response; a response's times identify its version (a 304
    that freshens it, or a new response, comes with new times)."""

    def __init__(self, via: bytes, targets=()) -> None:
        self.via = via
        self.targets = targets
        self._known: dict[tuple, Summary] = {}

    def get(self, stored: Stored) -> Summary:
        key = (stored.primary, stored.secondary, stored.request_time, stored.response_time)
        summary = self._known.get(key)
        if summary is None:
            if len(self._known) >= SUMMARY_CACHE_SIZE:
                self._known.clear()
            summary = self._known[key] = Summary(stored, self.via, self.targets)
        return summary


def tail(age: float, status_value: bytes) -> bytes:
    """The ``Age`` and ``Cache-Status`` lines of a served response."""
    return b"Age: %s\r\nCache-Status: %s\r\n" % (age_header(age), status_value)


def serve(req, stored: Stored, summary: Summary, age: float, status_value: bytes) -> None:
    """Answer ``req`` from ``stored``: 304 when the client's validators match, a range
    when it asks for one, else the whole response. Takes over ``stored``'s file."""
    headers = req.headers
    if summary.status == 200:
        if (req.header(b"if-none-match") is not None
                or req.header(b"if-modified-since") is not None) and (
                client_not_modified(headers, stored)):
            stored.close()
            req.respond(304, summary.not_modified_head + tail(age, status_value))
            return
        range_value = req.header(b"range")
        if range_value is not None and req.method == "GET" and if_range_allows(
                req.header(b"if-range"), summary.etag, summary.modified):
            if _serve_range(req, stored, summary, range_value, age, status_value):
                return
    serve_whole(req, stored, summary.status, summary.head + tail(age, status_value))


def serve_whole(req, stored: Stored, status: int, head: bytes) -> None:
    """The stored body with ``head``: one ``respond()`` from memory, ``sendfile`` from disk."""
    if stored.body is not None:
        req.respond(status, head, stored.body)
        return
    fd = stored.take_fd()
    req.start_response(status, head, length=stored.body_length)
    if fd is not None:
        req.sendfile(fd, stored.body_offset, stored.body_length)
    req.end()


def _serve_range(req, stored: Stored, summary: Summary, value: bytes, age: float,
                 status_value: bytes) -> bool:
    """206 or 416 for a Range request; False when the header is to be ignored."""
    size = stored.body_length
    try:
        ranges = parse_range(value.decode("latin-1"), size)
    except Unsatisfiable:
        stored.close()
        req.error(416, headers=[
            (b"Content-Range", unsatisfied_content_range(size).encode()),
            (b"Cache-Status", status_value)])
        return True
    if not ranges:
        return False
    head = summary.head + tail(age, status_value)
    if len(ranges) == 1:
        first, last = ranges[0]
        _send_part(req, stored, head, first, last, size, 0)
        return True
    boundary = secrets.token_hex(12)
    parts, closing, total = multipart_byteranges(ranges, size, summary.content_type, boundary)
    lines = [line for line in head.split(b"\r\n")
             if line and not line.lower().startswith(b"content-type:")]
    lines.append(b"Content-Type: multipart/byteranges; boundary=%s" % boundary.encode())
    req.start_response(206, b"\r\n".join(lines) + b"\r\n", length=total)
    fd = stored.take_fd()
    last_index = len(parts) - 1
    for index, (prefix, offset, count) in enumerate(parts):
        req.write(prefix)
        if fd is None:
            req.write(stored.body[offset:offset + count])
        else:
            req.sendfile(fd, stored.body_offset + offset, count, close=index == last_index)
    req.write(closing)
    req.end()
    return True


def serve_part(req, stored: Stored, summary: Summary, wanted: tuple[int, int],
               span: tuple[int, int, int], age: float, status_value: bytes) -> None:
    """Answer a range request from a stored partial response (``rules.partial``): the
    ``wanted`` bytes, which lie within the stored ``span`` (first, last, complete)."""
    head = summary.head + tail(age, status_value)
    _send_part(req, stored, head, *wanted, span[2], span[0])


def _send_part(req, stored: Stored, head: bytes, first: int, last: int, size: int,
               stored_from: int) -> None:
    """206 with bytes ``first``-``last`` of a representation of ``size`` bytes, from a
    stored body that begins at byte ``stored_from`` of it."""
    count = last - first + 1
    offset = first - stored_from
    head += b"Content-Range: %s\r\n" % content_range(first, last, size).encode()
    if stored.body is not None:
        req.respond(206, head, stored.body[offset:offset + count])
        return
    fd = stored.take_fd()
    req.start_response(206, head, length=count)
    req.sendfile(fd, stored.body_offset + offset, count)
    req.end()
