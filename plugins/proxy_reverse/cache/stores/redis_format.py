"""How the Redis store lays responses out in Redis: key names, the stored head's bytes,
and how long Redis keeps an entry (docs/fleet.md, "The shared cache").

A resource (a primary key) is one Redis hash, ``monkey:cache:<hash of the key>``:

- ``vary``: the header names its responses vary on, one per line (empty: no Vary);
- ``h:<hash of the secondary key>``: a variant's head (``encode_head``);
- ``b:<hash of the secondary key>``: that variant's body, as stored.

A hash expires as a whole: its TTL is the longest that one of its variants needs
(``keep_seconds``). The head carries the primary and secondary keys themselves, so a
hash collision can never serve another resource's response.
"""

from __future__ import annotations

import struct
from hashlib import sha256

from ..rules.control import Headers, has_header, response_cache_control
from ..rules.policy import current_age, freshness_lifetime

PREFIX = b"monkey:cache:"
LOCK_PREFIX = b"monkey:cache-lock:"
VARY_FIELD = b"vary"
# How long a stale response with a validator stays in Redis to be revalidated (a 304
# costs no body) when its own directives allow less.
VALIDATION_KEEP = 3600.0
MIN_KEEP = 1.0

_MAGIC = b"MKC1"
_HEAD = struct.Struct("!4sHddQIII")
_FIELD = struct.Struct("!HI")


def _digest(data: bytes, size: int) -> bytes:
    return sha256(data).hexdigest()[:size].encode("ascii")


def resource_key(primary: bytes) -> bytes:
    """The Redis hash holding ``primary``'s variants."""
    return PREFIX + _digest(primary, 40)


def lock_key(primary: bytes) -> bytes:
    """The Redis key a fill of ``primary`` holds while it runs (collapsing)."""
    return LOCK_PREFIX + _digest(primary, 40)


def filled_channel(db: int) -> bytes:
    """The channel a fill's end is published on (the message: its lock key). Pub/sub
    spans a Redis's databases, so the channels name theirs."""
    return b"monkey:cache-filled:%d" % db


def invalidated_channel(db: int) -> bytes:
    """The channel a removed resource is published on (the message: its primary key)."""
    return b"monkey:cache-invalidated:%d" % db


def variant_fields(secondary: bytes) -> tuple[bytes, bytes]:
    """The hash fields of one variant: its head, its body."""
    tag = _digest(secondary, 32) if secondary else b""
    return b"h:" + tag, b"b:" + tag


def encode_vary(names: tuple[bytes, ...]) -> bytes:
    return b"\n".join(names)


def decode_vary(value: bytes) -> tuple[bytes, ...]:
    return tuple(value.split(b"\n")) if value else ()


def encode_head(primary: bytes, secondary: bytes, status: int, headers: Headers,
                request_time: float, response_time: float, body_length: int) -> bytes:
    """A variant's head as stored: the same response always gives the same bytes (a
    304's update compares them to make sure it replaces the head it revalidated)."""
    parts = [_HEAD.pack(_MAGIC, status, request_time, response_time, body_length,
                        len(primary), len(secondary), len(headers)), primary, secondary]
    for name, value in headers:
        parts.append(_FIELD.pack(len(name), len(value)))
        parts.append(name)
        parts.append(value)
    return b"".join(parts)


class Head:
    """A decoded head: what ``encode_head`` was given."""

    __slots__ = ("primary", "secondary", "status", "headers", "request_time",
                 "response_time", "body_length")

    def __init__(self, primary, secondary, status, headers, request_time, response_time,
                 body_length) -> None:
        self.primary = primary
        self.secondary = secondary
        self.status = status
        self.headers = headers
        self.request_time = request_time
        self.response_time = response_time
        self.body_length = body_length


def decode_head(data: bytes) -> Head | None:
    """The head stored in ``data``; None when it is not one (damaged, or of another
    format)."""
    try:
        magic, status, request_time, response_time, body_length, primary_len, \
            secondary_len, count = _HEAD.unpack_from(data)
    except struct.error:
        return None
    if magic != _MAGIC:
        return None
    pos = _HEAD.size
    primary = data[pos:pos + primary_len]
    pos += primary_len
    secondary = data[pos:pos + secondary_len]
    pos += secondary_len
    headers = []
    try:
        for _ in range(count):
            name_len, value_len = _FIELD.unpack_from(data, pos)
            pos += _FIELD.size
            name = data[pos:pos + name_len]
            pos += name_len
            headers.append((name, data[pos:pos + value_len]))
            pos += value_len
    except struct.error:
        return None
    if pos != len(data):
        return None
    return Head(primary, secondary, status, headers, request_time, response_time,
                body_length)


def keep_seconds(status: int, headers: Headers, request_time: float, response_time: float,
                 targets=()) -> float:
    """How long Redis keeps a response stored at ``response_time``: the freshness it
    has left, plus the longest of its ``stale-while-revalidate``, its
    ``stale-if-error`` and, when it has a validator (ETag, Last-Modified), the
    ``VALIDATION_KEEP`` window in which a stale copy is still worth revalidating. At
    least ``MIN_KEEP``."""
    lifetime = freshness_lifetime(status, headers, response_time, targets)
    age = current_age(_Times(headers, request_time, response_time), response_time)
    cc = response_cache_control(headers, targets)
    stale = max(cc.seconds("stale-while-revalidate") or 0,
                cc.seconds("stale-if-error") or 0)
    if has_header(headers, b"etag") or has_header(headers, b"last-modified"):
        stale = max(stale, VALIDATION_KEEP)
    return max(MIN_KEEP, lifetime - age + stale)


class _Times:
    """What ``current_age`` reads of a stored response."""

    __slots__ = ("headers", "request_time", "response_time")

    def __init__(self, headers: Headers, request_time: float, response_time: float) -> None:
        self.headers = headers
        self.request_time = request_time
        self.response_time = response_time
