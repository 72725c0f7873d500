"""Reading the caching header fields: Cache-Control, Pragma, Expires, Date, Age, Last-Modified.

Headers are lists of ``(name, value)`` byte pairs; names compare case-insensitively, so
the same functions read lower-case request headers and upstream headers as received.

Cache-Control (RFC 9111 §5.2) is a list of ``name[=value]`` directives, the value a token
or a quoted-string; names are case-insensitive; several field lines form one list.
Duplicates and bad values are resolved so that the result is never less restrictive
than what the sender could have meant (§4.2.1):

- a directive given twice keeps its first value;
- an argument that is not a valid delta-seconds (``max-age=soon``, ``max-age`` without
  a value) reads as 0, which makes a response stale at once and gives no stale allowance;
- values above 2^31 read as 2^31 (§1.2.2);
- conflicting directives (``max-age=60, no-cache``) are all kept: the policy applies each,
  so the most restrictive one decides.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from monkey_py.static.conditional import parse_http_date

from .structured import Decimal, parse_dictionary

Headers = Sequence[tuple[bytes, bytes]]

MAX_DELTA = 2**31
# Directives whose argument is a delta-seconds (an Integer in a targeted field).
DELTA_DIRECTIVES = frozenset({"max-age", "s-maxage", "stale-while-revalidate",
                              "stale-if-error", "max-stale", "min-fresh"})

_TCHAR = frozenset(
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_OWS = b" \t"
# A number with a parameter or a suffix after it: an Age, malformed.
_MALFORMED_AGE = re.compile(rb"[0-9]+(?:[ \t]*;|[ \t]+[^ \t])")


class CacheControl:
    """Cache-Control directives by lower-case name; a value is None when none was given.

    ``targeted``: they come from a targeted field (RFC 9213), which also sets Expires
    aside for this cache.
    """

    __slots__ = ("directives", "targeted")

    def __init__(self, directives: dict[str, str | None] | None = None,
                 targeted: bool = False) -> None:
        self.directives: dict[str, str | None] = directives or {}
        self.targeted = targeted

    def __contains__(self, name: str) -> bool:
        return name in self.directives

    def __bool__(self) -> bool:
        return bool(self.directives)

    def __repr__(self) -> str:
        return f"CacheControl({self.directives!r})"

    def value(self, name: str) -> str | None:
        """The directive's argument (quotes removed), or None if absent or without one."""
        return self.directives.get(name)

    def seconds(self, name: str) -> int | None:
        """The directive's delta-seconds argument: None if absent, 0 if invalid or missing."""
        if name not in self.directives:
            return None
        return delta_seconds(self.directives[name])


def delta_seconds(text: str | bytes | None) -> int:
    """A delta-seconds value (RFC 9111 §1.2.2), 0 when invalid, capped at 2^31."""
    if text is None:
        return 0
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    text = text.strip(" \t")
    if not text or not text.isascii() or not text.isdigit():
        return 0
    return min(int(text), MAX_DELTA)


def parse_cache_control(values: Iterable[bytes]) -> CacheControl:
    """Parse the values of every Cache-Control field line into one ``CacheControl``.

    Malformed members are skipped up to the next comma outside a quoted string.
    """
    directives: dict[str, str | None] = {}
    for value in values:
        for name, argument in _members(value):
            if name not in directives:
                directives[name] = argument
    return CacheControl(directives)


def _members(data: bytes) -> Iterable[tuple[str, str | None]]:
    """The ``(lower-case name, argument)`` members of one Cache-Control field value."""
    length = len(data)
    pos = 0
    while pos < length:
        while pos < length and (data[pos] in _OWS or data[pos] == 0x2C):
            pos += 1
        start = pos
        while pos < length and data[pos] in _TCHAR:
            pos += 1
        name = data[start:pos].decode("ascii").lower()
        while pos < length and data[pos] in _OWS:
            pos += 1
        argument: str | None = None
        valid = bool(name)
        if pos < length and data[pos] == 0x3D:
            pos += 1
            while pos < length and data[pos] in _OWS:
                pos += 1
            if pos < length and data[pos] == 0x22:
                argument, pos = _quoted(data, pos)
                valid = valid and argument is not None
            else:
                start = pos
                while pos < length and data[pos] in _TCHAR:
                    pos += 1
                argument = data[start:pos].decode("ascii")
                valid = valid and bool(argument)
            while pos < length and data[pos] in _OWS:
                pos += 1
        if pos < length and data[pos] != 0x2C:
            valid = False
            pos = _skip_member(data, pos)
        if valid:
            yield name, argument


def _quoted(data: bytes, pos: int) -> tuple[str | None, int]:
    """Read the quoted-string at ``pos``: (its text, or None if unterminated; next position)."""
    out = bytearray()
    pos += 1
    length = len(data)
    while pos < length:
        byte = data[pos]
        if byte == 0x22:
            return out.decode("latin-1"), pos + 1
        if byte == 0x5C and pos + 1 < length:
            pos += 1
            byte = data[pos]
        out.append(byte)
        pos += 1
    return None, pos


def _skip_member(data: bytes, pos: int) -> int:
    """The position of the next comma outside a quoted string (or the end)."""
    length = len(data)
    quoted = False
    while pos < length:
        byte = data[pos]
        if quoted:
            if byte == 0x5C:
                pos += 1
            elif byte == 0x22:
                quoted = False
        elif byte == 0x22:
            quoted = True
        elif byte == 0x2C:
            return pos
        pos += 1
    return pos


def header_values(headers: Headers, name: bytes) -> list[bytes]:
    """Every value of header ``name`` (lower-case), in order, matched case-insensitively."""
    return [value for key, value in headers if key.lower() == name]


def header_value(headers: Headers, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower-case), or None."""
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def has_header(headers: Headers, name: bytes) -> bool:
    """Whether header ``name`` (lower-case) is present."""
    return any(key.lower() == name for key, _ in headers)


def list_tokens(headers: Headers, name: bytes) -> list[bytes]:
    """The comma-separated members of every ``name`` field line, stripped and lower-cased."""
    tokens = []
    for value in header_values(headers, name):
        for member in value.split(b","):
            member = member.strip(b" \t").lower()
            if member:
                tokens.append(member)
    return tokens


def response_cache_control(headers: Headers, targets: Sequence[bytes] = ()) -> CacheControl:
    """The response directives this cache obeys: those of the first field of ``targets``
    (lower-case targeted field names, RFC 9213) that the response carries with a valid,
    non-empty value; else its Cache-Control (a response's Pragma has no meaning)."""
    for name in targets:
        targeted = targeted_cache_control(header_values(headers, name))
        if targeted is not None:
            return targeted
    return parse_cache_control(header_values(headers, b"cache-control"))


def targeted_cache_control(values: list[bytes]) -> CacheControl | None:
    """The directives of a targeted field's lines (RFC 9213 §2.1), or None when there are
    none, the value is empty or it is not a valid Structured Field Dictionary (the field
    is then ignored). A member's value maps back to the argument Cache-Control would have
    written; one of a type no directive takes (``max-age=1.5``, ``max-age="60"``) becomes
    an invalid argument, which for a delta-seconds reads as 0 (module notes). Boolean
    false members are absent; parameters are ignored."""
    if not values:
        return None
    members = parse_dictionary(b", ".join(values))
    if not members:
        return None
    directives: dict[str, str | None] = {}
    for name, value in members.items():
        if value is True:
            directives[name] = None
        elif value is False:
            continue
        elif name in DELTA_DIRECTIVES:
            directives[name] = str(value) if type(value) is int else ""
        elif isinstance(value, str) and not isinstance(value, Decimal):
            directives[name] = str(value)  # a String or a Token: field names, extensions
        else:
            directives[name] = ""
    return CacheControl(directives, targeted=True)


def request_cache_control(headers: Headers) -> CacheControl:
    """The request's Cache-Control directives; ``Pragma: no-cache`` counts as ``no-cache``
    only when the request has no Cache-Control field at all (RFC 9111 §5.4)."""
    values = header_values(headers, b"cache-control")
    if values:
        return parse_cache_control(values)
    if b"no-cache" in list_tokens(headers, b"pragma"):
        return CacheControl({"no-cache": None})
    return CacheControl()


def parse_date(value: bytes | None) -> float | None:
    """An HTTP-date header value as a POSIX time, None when absent or invalid."""
    if value is None:
        return None
    return parse_http_date(value.decode("latin-1"))


def date_value(headers: Headers) -> float | None:
    """The Date header as a POSIX time, or None."""
    return parse_date(header_value(headers, b"date"))


def last_modified(headers: Headers) -> float | None:
    """The Last-Modified header as a POSIX time, or None."""
    return parse_date(header_value(headers, b"last-modified"))


def expires(headers: Headers) -> float | None:
    """The first Expires header as a POSIX time; None when absent.

    An invalid date (``0``, ``-1``, garbage) means "already expired" (RFC 9111 §5.3): it
    reads as the epoch, earlier than any Date.
    """
    value = header_value(headers, b"expires")
    if value is None:
        return None
    parsed = parse_date(value)
    return 0.0 if parsed is None else parsed


def age_value(headers: Headers) -> int:
    """The Age in seconds as RFC 9111 §5.1 reads it: the first member of the first
    field line. A delta-seconds counts (capped at 2^31). A value that is no number at
    all (``abc``, ``-60``, ``1.5``) is ignored (0), as §5.1 says. A number followed by a
    parameter or by more text (``7200;foo=bar``, ``60 s``) is malformed: what the sender
    meant is unknown but may be old, so it reads as 2^31, and the response is validated
    before it is reused."""
    value = header_value(headers, b"age")
    if value is None:
        return 0
    member = value.split(b",", 1)[0].strip(b" \t")
    if member.isdigit():
        return min(int(member), MAX_DELTA)
    return MAX_DELTA if _MALFORMED_AGE.match(member) else 0
