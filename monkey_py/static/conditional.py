"""Validators and conditional requests (RFC 9110 §8.8, §13): ETag, HTTP dates, 304 and 412.

No clock is read here: every time comes in as an argument, so the results depend only on
the request and the file's metadata.
"""

from __future__ import annotations

import re
import time
from calendar import timegm
from collections.abc import Callable

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_LONG_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBER = {name: number for number, name in enumerate(_MONTHS, 1)}
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

# IMF-fixdate has a four-digit year: keep formatted times within years 0001..9999.
_MIN_TS = -62135596800
_MAX_TS = 253402300799

# Formatted dates by whole second, and the reverse map, so that a client echoing our own
# Last-Modified in If-Modified-Since is answered by a dictionary lookup. Cleared when full.
_CACHE_SIZE = 4096
_formatted: dict[int, str] = {}
_parsed: dict[str, int] = {}

_DAY = "|".join(_DAYS)
_MONTH = "|".join(_MONTHS)
_TIME = r"(\d\d):(\d\d):(\d\d)"
_IMF_FIXDATE = re.compile(rf"(?:{_DAY}), (\d\d) ({_MONTH}) (\d{{4}}) {_TIME} GMT", re.ASCII)
_RFC850 = re.compile(
    rf"(?:{'|'.join(_LONG_DAYS)}), (\d\d)-({_MONTH})-(\d\d) {_TIME} GMT", re.ASCII
)
_ASCTIME = re.compile(rf"(?:{_DAY}) ({_MONTH}) ([ \d]\d) {_TIME} (\d{{4}})", re.ASCII)

# Two-digit RFC 850 years: 70..99 are 19xx, 00..69 are 20xx (the POSIX strptime pivot).
# RFC 9110 asks for a pivot fifty years after "now"; with no clock here, a fixed pivot
# differs from it only for the years 2070..2075, which no client sends in this obsolete form.
_RFC850_PIVOT = 70


def make_etag(mtime_ns: int, size: int) -> str:
    """A strong entity tag, ``"<mtime hex>-<size hex>"`` (nginx's shape, nanosecond mtime).

    The nanosecond modification time keeps two versions written within the same second
    apart, which a strong validator must do.
    """
    return f'"{mtime_ns:x}-{size:x}"'


def http_date(ts: float) -> str:
    """Format a POSIX time as an IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``).

    Fractions of a second are dropped (floor); results are cached by whole second.
    """
    second = int(ts)
    if second > ts:
        second -= 1
    text = _formatted.get(second)
    if text is not None:
        return text
    clamped = min(max(second, _MIN_TS), _MAX_TS)
    t = time.gmtime(clamped)
    text = (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )
    if len(_formatted) >= _CACHE_SIZE:
        _formatted.clear()
        _parsed.clear()
    _formatted[second] = text
    _parsed[text] = clamped
    return text


def parse_http_date(value: str) -> float | None:
    """Parse an HTTP-date in any of the three formats of RFC 9110 §5.6.7; None if invalid.

    IMF-fixdate, the obsolete RFC 850 form and C's asctime() form are accepted, with
    surrounding whitespace. Names and ``GMT`` are case-sensitive, as the grammar says; an
    impossible date (30 Feb, 25:00:00) is invalid; the weekday name is not checked.
    """
    known = _parsed.get(value)
    if known is not None:
        return float(known)
    value = value.strip(" \t")
    match = _IMF_FIXDATE.fullmatch(value)
    if match is not None:
        day, month, year, hour, minute, second = match.groups()
        year_number = int(year)
    else:
        match = _RFC850.fullmatch(value)
        if match is not None:
            day, month, year, hour, minute, second = match.groups()
            year_number = int(year)
            year_number += 1900 if year_number >= _RFC850_PIVOT else 2000
        else:
            match = _ASCTIME.fullmatch(value)
            if match is None:
                return None
            month, day, hour, minute, second, year = match.groups()
            year_number = int(year)
    day_number = int(day)
    month_number = _MONTH_NUMBER[month]
    hour_number, minute_number, second_number = int(hour), int(minute), int(second)
    if (
        not 1 <= day_number <= _DAYS_IN_MONTH[month_number - 1]
        or (month_number == 2 and day_number == 29 and not _is_leap(year_number))
        or hour_number > 23
        or minute_number > 59
        or second_number > 60
    ):
        return None
    return float(
        timegm((year_number, month_number, day_number, hour_number, minute_number,
                second_number, 0, 0, 0))
    )


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _entity_tags(value: str) -> list[tuple[bool, str]] | None:
    """Split an entity-tag list into (weak, opaque-tag) pairs; None for ``*`` or bad syntax.

    Commas may appear inside a quoted tag, so the list is scanned, not split. The caller
    tells ``*`` from bad syntax by looking at the value itself.
    """
    tags = []
    length = len(value)
    pos = 0
    while True:
        while pos < length and value[pos] in " \t,":
            pos += 1
        if pos == length:
            return tags
        weak = value.startswith("W/", pos)
        if weak:
            pos += 2
        if pos == length or value[pos] != '"':
            return None
        end = value.find('"', pos + 1)
        if end < 0:
            return None
        tags.append((weak, value[pos : end + 1]))
        pos = end + 1
        if pos < length and value[pos] not in " \t,":
            return None


def _split_etag(etag: str) -> tuple[bool, str]:
    """Our own validator as (weak, opaque-tag)."""
    if etag.startswith("W/"):
        return True, etag[2:]
    return False, etag


def _matches(value: bytes, etag: str, strong: bool) -> bool:
    """Whether an If-Match / If-None-Match value matches ``etag`` (``*`` matches any).

    A malformed list matches nothing.
    """
    text = value.decode("latin-1").strip(" \t")
    if text == "*":
        return True
    if text == etag and not (strong and etag.startswith("W/")):
        return True
    tags = _entity_tags(text)
    if not tags:
        return False
    own_weak, own_tag = _split_etag(etag)
    if strong:
        return not own_weak and (False, own_tag) in tags
    return any(tag == own_tag for _, tag in tags)


def _header_date(value: bytes) -> float | None:
    return parse_http_date(value.decode("latin-1"))


def evaluate(
    method: str, headers_get: Callable[[bytes], bytes | None], etag: str, mtime: float
) -> int | None:
    """Evaluate the request's preconditions against the file (RFC 9110 §13.2.2).

    ``headers_get(name)`` returns the value of the lower-case request header ``name`` or
    None. Returns 412 (If-Match fails, or If-Unmodified-Since fails when If-Match is
    absent), 304 (If-None-Match matches, weakly, on GET or HEAD; else If-Modified-Since
    is not older than the file on GET or HEAD), 412 when If-None-Match matches any other
    method, or None to proceed. Dates compare at one-second resolution; an invalid date
    is ignored. If-Range is the caller's next step (``if_range_allows``).
    """
    if_match = headers_get(b"if-match")
    if if_match is not None:
        if not _matches(if_match, etag, strong=True):
            return 412
    else:
        value = headers_get(b"if-unmodified-since")
        if value is not None:
            date = _header_date(value)
            if date is not None and _whole_second(mtime) > date:
                return 412
    get_or_head = method == "GET" or method == "HEAD"
    if_none_match = headers_get(b"if-none-match")
    if if_none_match is not None:
        if _matches(if_none_match, etag, strong=False):
            return 304 if get_or_head else 412
        return None
    if get_or_head:
        value = headers_get(b"if-modified-since")
        if value is not None:
            date = _header_date(value)
            if date is not None and _whole_second(mtime) <= date:
                return 304
    return None


def if_range_allows(value: bytes | None, etag: str, mtime: float) -> bool:
    """Whether the Range header may be honoured given If-Range ``value`` (RFC 9110 §13.1.5).

    True when there is no If-Range, when it is an entity tag strongly equal to ``etag``,
    or a date exactly equal to the Last-Modified second. Anything else, a weak or
    malformed tag or an invalid date included, means "send the whole representation".
    """
    if value is None:
        return True
    text = value.decode("latin-1").strip(" \t")
    if text.startswith('"') or text.startswith("W/"):
        return text == etag and not etag.startswith("W/")
    date = parse_http_date(text)
    return date is not None and date == _whole_second(mtime)


def _whole_second(mtime: float) -> int:
    """The modification time as Last-Modified shows it: floored to the second."""
    second = int(mtime)
    return second - 1 if second > mtime else second
