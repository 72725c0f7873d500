"""How the Redis store names and lays out its entries, and how long Redis keeps them."""

from __future__ import annotations

import time

import pytest

from monkey_py.static.conditional import http_date
from monkey_py_plugins.proxy_reverse.cache.stores.redis_format import (
    MIN_KEEP,
    VALIDATION_KEEP,
    decode_head,
    decode_vary,
    encode_head,
    encode_vary,
    filled_channel,
    invalidated_channel,
    keep_seconds,
    lock_key,
    resource_key,
    variant_fields,
)

PRIMARY = b"http://example.com/a?b=1"
HEADERS = [(b"content-type", b"text/plain"), (b"x-empty", b""), (b"x-bytes", b"\xe9\x00:")]


def test_keys_are_named_by_a_hash_of_the_primary_key():
    assert resource_key(PRIMARY) == b"monkey:cache:" + resource_key(PRIMARY)[13:]
    assert len(resource_key(PRIMARY)) == len(b"monkey:cache:") + 40
    assert resource_key(PRIMARY) != resource_key(PRIMARY + b"2")
    assert lock_key(PRIMARY).startswith(b"monkey:cache-lock:")
    assert lock_key(PRIMARY)[18:] == resource_key(PRIMARY)[13:]


def test_the_channels_name_their_database():
    assert filled_channel(0) == b"monkey:cache-filled:0"
    assert invalidated_channel(12) == b"monkey:cache-invalidated:12"
    assert filled_channel(1) != filled_channel(2)


def test_variant_fields_name_head_and_body_by_the_secondary_key():
    assert variant_fields(b"") == (b"h:", b"b:")
    head, body = variant_fields(b"accept-language:en")
    assert head.startswith(b"h:") and body.startswith(b"b:") and head[2:] == body[2:]
    assert len(head) == 34
    assert variant_fields(b"accept-language:fr")[0] != head


@pytest.mark.parametrize("names", [(), (b"accept",), (b"accept", b"accept-language")])
def test_vary_names_round_trip(names):
    assert decode_vary(encode_vary(names)) == names


def test_a_head_round_trips_exactly():
    data = encode_head(PRIMARY, b"accept:x", 203, HEADERS, 1700000000.25, 1700000001.5, 1234)
    head = decode_head(data)
    assert (head.primary, head.secondary, head.status, head.headers, head.request_time,
            head.response_time, head.body_length) == (
        PRIMARY, b"accept:x", 203, HEADERS, 1700000000.25, 1700000001.5, 1234)
    assert encode_head(head.primary, head.secondary, head.status, head.headers,
                       head.request_time, head.response_time, head.body_length) == data


@pytest.mark.parametrize("damage", [
    lambda data: data[:-1],
    lambda data: data + b"x",
    lambda data: b"XXXX" + data[4:],
    lambda data: data[:10],
    lambda data: b"",
])
def test_a_damaged_head_is_none(damage):
    data = encode_head(PRIMARY, b"", 200, HEADERS, 1.0, 2.0, 3)
    assert decode_head(damage(data)) is None


def response(*fields: tuple[bytes, bytes], age_of_date: float = 0.0):
    now = time.time()
    return [(b"date", http_date(now - age_of_date).encode()), *fields], now


@pytest.mark.parametrize("control, validator, expected", [
    (b"max-age=600", None, 600),
    (b"max-age=600, stale-while-revalidate=30", None, 630),
    (b"max-age=600, stale-if-error=300, stale-while-revalidate=30", None, 900),
    (b"max-age=600", (b"etag", b'"x"'), 600 + VALIDATION_KEEP),
    (b"max-age=600, stale-if-error=7200", (b"etag", b'"x"'), 600 + 7200),
    (b"max-age=0", (b"last-modified", b"Mon, 01 Jan 2024 00:00:00 GMT"), VALIDATION_KEEP),
    (b"max-age=0, stale-if-error=60", None, 60),
    (b"max-age=0", None, MIN_KEEP),
    (b"s-maxage=100, max-age=5", None, 100),
])
def test_redis_keeps_a_response_for_its_freshness_and_its_stale_windows(control, validator,
                                                                       expected):
    fields = [(b"cache-control", control)] + ([validator] if validator else [])
    headers, now = response(*fields)
    assert keep_seconds(200, headers, now, now) == pytest.approx(expected, abs=1)


def test_the_time_a_response_already_spent_in_caches_counts():
    headers, now = response((b"cache-control", b"max-age=600"), (b"age", b"100"))
    assert keep_seconds(200, headers, now, now) == pytest.approx(500, abs=1)
    old, now = response((b"cache-control", b"max-age=600"), age_of_date=250)
    assert keep_seconds(200, old, now, now) == pytest.approx(350, abs=1)
    expired, now = response((b"cache-control", b"max-age=60"), age_of_date=3600)
    assert keep_seconds(200, expired, now, now) == MIN_KEEP


def test_targeted_fields_decide_the_lifetime_as_for_the_cache():
    headers, now = response((b"cache-control", b"max-age=10"),
                            (b"cdn-cache-control", b"max-age=900"))
    assert keep_seconds(200, headers, now, now, (b"cdn-cache-control",)) == pytest.approx(
        900, abs=1)
    assert keep_seconds(200, headers, now, now) == pytest.approx(10, abs=1)
