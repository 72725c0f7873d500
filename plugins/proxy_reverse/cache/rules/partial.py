"""Partial content (206) in the cache: which 206 responses are kept, and which range
requests a kept one answers (RFC 9111 §3.3, §4; RFC 9110 §14).

A 206 is kept when it is a single part with a ``Content-Range`` of known complete
length and a ``Content-Length`` equal to its span, so the stored bytes are exactly
those the range names. It is stored apart from the complete response (``partial_key``),
which it never replaces and which is always preferred; it answers a request whose one
range lies wholly within it (§4: an incomplete response answers only such a request).
Parts are not combined with each other or completed from the upstream.
"""

from __future__ import annotations

import re

from monkey_py.static.ranges import Unsatisfiable, parse_range

from .control import Headers, header_value, header_values

_CONTENT_RANGE = re.compile(rb"[ \t]*bytes[ \t]+([0-9]{1,18})-([0-9]{1,18})/([0-9]{1,18})[ \t]*",
                            re.IGNORECASE)


def partial_key(primary: bytes) -> bytes:
    """The key a resource's partial response is stored under (a primary key has no
    blanks, so this names nothing else)."""
    return primary + b" partial"


def stored_span(headers: Headers) -> tuple[int, int, int] | None:
    """``(first, last, complete)`` of a 206 the cache can keep, else None (module notes)."""
    values = header_values(headers, b"content-range")
    if len(values) != 1:
        return None
    match = _CONTENT_RANGE.fullmatch(values[0])
    if match is None:
        return None
    first, last, complete = (int(group) for group in match.groups())
    length = (header_value(headers, b"content-length") or b"").strip(b" \t")
    if not first <= last < complete or not length.isdigit() or int(length) != last - first + 1:
        return None
    return first, last, complete


def wanted_within(range_value: bytes, span: tuple[int, int, int]) -> tuple[int, int] | None:
    """The one range a ``Range`` value asks for, resolved against the complete length,
    when it lies wholly within the stored ``span``; else None."""
    first, last, complete = span
    try:
        ranges = parse_range(range_value.decode("latin-1"), complete)
    except Unsatisfiable:
        return None
    if not ranges or len(ranges) != 1:
        return None
    start, end = ranges[0]
    return (start, end) if first <= start and end <= last else None
