"""Which 206 responses the cache keeps, and which range requests a kept one answers."""

from __future__ import annotations

from monkey_py_plugins.proxy_reverse.cache.rules.partial import (
    partial_key,
    stored_span,
    wanted_within,
)
from monkey_py_plugins.proxy_reverse.cache.rules.policy import storable


def part(content_range: bytes, length: bytes | None = b"10"):
    headers = [(b"Content-Range", content_range), (b"Cache-Control", b"max-age=60")]
    return headers + ([(b"Content-Length", length)] if length is not None else [])


def test_the_parts_that_are_kept():
    assert stored_span(part(b"bytes 10-19/100")) == (10, 19, 100)
    assert stored_span(part(b"BYTES 10-19/100")) == (10, 19, 100)
    assert stored_span(part(b"bytes 10-19/*")) is None           # complete length unknown
    assert stored_span(part(b"bytes 10-19/100", b"11")) is None  # not the span's length
    assert stored_span(part(b"bytes 10-19/100", None)) is None
    assert stored_span(part(b"bytes 19-10/100")) is None
    assert stored_span(part(b"bytes 95-104/100")) is None
    assert stored_span([(b"Content-Type", b"multipart/byteranges; boundary=x")]) is None


def test_a_206_is_storable_only_as_a_kept_part_of_a_range_request():
    ranged = [(b"range", b"bytes=10-19")]
    assert storable("GET", 206, ranged, part(b"bytes 10-19/100"))
    assert not storable("GET", 206, [], part(b"bytes 10-19/100"))
    assert not storable("GET", 206, ranged, part(b"bytes 10-19/*"))


def test_the_requests_a_part_answers():
    span = (10, 19, 100)
    assert wanted_within(b"bytes=10-19", span) == (10, 19)
    assert wanted_within(b"bytes=12-12", span) == (12, 12)
    assert wanted_within(b"bytes=15-25", span) is None
    assert wanted_within(b"bytes=-5", span) is None              # 95-99
    assert wanted_within(b"bytes=-5", (90, 99, 100)) == (95, 99)
    assert wanted_within(b"bytes=95-", (90, 99, 100)) == (95, 99)
    assert wanted_within(b"bytes=10-11,13-14", span) is None     # one range only
    assert wanted_within(b"bytes=200-", span) is None
    assert wanted_within(b"items=1-2", span) is None


def test_a_part_has_a_key_of_its_own():
    assert partial_key(b"http://h/a") == b"http://h/a partial"
