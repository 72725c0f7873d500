"""Byte ranges (RFC 9110 §14): parse ``Range``, build ``Content-Range`` and multipart bodies.

A header the server cannot honour safely is ignored and the whole representation is sent
with 200, which RFC 9110 always allows; only a well-formed header with no satisfiable
range is refused (416).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Above this many ranges, after coalescing, the header is ignored and the full body sent.
MAX_RANGES = 64

# A position longer than this many digits exceeds any file size: treat it as "infinite"
# instead of converting an attacker-sized number.
_MAX_DIGITS = 18
_HUGE = 10**_MAX_DIGITS

# The common case, one plain range, parsed by one regular expression; anything else
# (lists, odd spacing, long numbers) takes the general path.
_SINGLE_RANGE = re.compile(r"[ \t]*bytes=(\d{0,18})-(\d{0,18})[ \t]*", re.ASCII | re.IGNORECASE)

_BCHARS = frozenset(
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? "
)


class Unsatisfiable(Exception):
    """No requested range overlaps the representation (answer 416)."""


def _position(text: str) -> int:
    """Parse a ``1*DIGIT`` position; ValueError when it is not one."""
    if not text or not text.isascii() or not text.isdigit():
        raise ValueError(text)
    if len(text) > _MAX_DIGITS:
        return _HUGE
    return int(text)


def _parse_spec(spec: str, size: int) -> tuple[int, int] | None:
    """One range-spec: its clamped (first, last), or None when it is unsatisfiable.

    ValueError when the spec is not valid syntax (which voids the whole header).
    """
    first_text, dash, last_text = spec.strip(" \t").partition("-")
    if not dash:
        raise ValueError(spec)
    return _clamp(first_text, last_text, size)


def _clamp(first_text: str, last_text: str, size: int) -> tuple[int, int] | None:
    """The sides of a range-spec as a clamped (first, last); None if unsatisfiable.

    ValueError when a side is not a position or last < first.
    """
    if not first_text:
        suffix = _position(last_text)
        if suffix == 0 or size == 0:
            return None
        return (size - suffix if suffix < size else 0, size - 1)
    first = _position(first_text)
    if last_text:
        last = _position(last_text)
        if last < first:
            raise ValueError(f"{first_text}-{last_text}")
        if last >= size:
            last = size - 1
    else:
        last = size - 1
    if first >= size:
        return None
    return (first, last)


def _coalesce(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort and merge overlapping or adjacent ranges when there are any; else keep order."""
    ordered = sorted(ranges)
    merged = [ordered[0]]
    for first, last in ordered[1:]:
        prev_first, prev_last = merged[-1]
        if first <= prev_last + 1:
            if last > prev_last:
                merged[-1] = (prev_first, last)
        else:
            merged.append((first, last))
    return ranges if len(merged) == len(ranges) else merged


def parse_range(header: str, size: int) -> list[tuple[int, int]] | None:
    """Return the satisfiable inclusive (first, last) ranges of a ``Range`` value.

    None means "ignore the header and send the whole representation": another unit than
    ``bytes``, a syntax error anywhere, or more than ``MAX_RANGES`` ranges left after
    overlapping and adjacent ones were merged. Ranges that neither overlap nor touch keep
    the order the client asked for; when any do, all are sorted and merged. Raises
    Unsatisfiable when the header is valid but no range is (always so when ``size`` is 0).
    """
    match = _SINGLE_RANGE.fullmatch(header)
    if match is not None:
        try:
            one = _clamp(match[1], match[2], size)
        except ValueError:
            return None
        if one is None:
            raise Unsatisfiable(f"no satisfiable range in {header!r}")
        return [one]
    unit, eq, range_set = header.strip(" \t").partition("=")
    if not eq or unit.lower() != "bytes":
        return None
    try:
        if "," not in range_set:
            one = _parse_spec(range_set, size)
            if one is None:
                raise Unsatisfiable(f"no satisfiable range in {header!r}")
            return [one]
        ranges = []
        seen_spec = False
        for spec in range_set.split(","):
            if not spec.strip(" \t"):
                continue
            seen_spec = True
            one = _parse_spec(spec, size)
            if one is not None:
                ranges.append(one)
    except ValueError:
        return None
    if not seen_spec:
        return None
    if not ranges:
        raise Unsatisfiable(f"no satisfiable range in {header!r}")
    ranges = _coalesce(ranges)
    if len(ranges) > MAX_RANGES:
        return None
    return ranges


def content_range(first: int, last: int, size: int) -> str:
    """The ``Content-Range`` value of one satisfied range: ``bytes first-last/size``."""
    return f"bytes {first}-{last}/{size}"


def unsatisfied_content_range(size: int) -> str:
    """The ``Content-Range`` value a 416 response carries: ``bytes */size``."""
    return f"bytes */{size}"


def multipart_byteranges(
    ranges: Sequence[tuple[int, int]], size: int, content_type: str, boundary: str
) -> tuple[list[tuple[bytes, int, int]], bytes, int]:
    """Lay out a ``multipart/byteranges`` body (RFC 9110 §14.6, RFC 2046 §5.1.1).

    Returns one (part header, file offset, byte count) per range, in order: send the part
    header, then ``count`` bytes of the file from ``offset``. After the last part send the
    closing delimiter. The third value is the body's total length, for Content-Length.
    The response's own Content-Type is ``multipart/byteranges; boundary=<boundary>``.
    ValueError when the boundary is not a valid RFC 2046 boundary or the content type
    holds a line break.
    """
    if not 0 < len(boundary) <= 70 or boundary.endswith(" ") or not _BCHARS.issuperset(boundary):
        raise ValueError(f"invalid multipart boundary {boundary!r}")
    if "\r" in content_type or "\n" in content_type:
        raise ValueError(f"invalid content type {content_type!r}")
    head = f"\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes "
    tail = f"/{size}\r\n\r\n"
    parts = []
    total = 0
    for first, last in ranges:
        header = f"{head}{first}-{last}{tail}".encode("latin-1")
        count = last - first + 1
        parts.append((header, first, count))
        total += len(header) + count
    closing = f"\r\n--{boundary}--\r\n".encode("latin-1")
    return parts, closing, total + len(closing)
