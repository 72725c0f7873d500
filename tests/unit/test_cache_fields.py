"""Fields the cache stores and serves: storage filter, Age, Cache-Status (RFC 9111, RFC 9211)."""

from __future__ import annotations

from monkey_py_plugins.proxy_reverse.cache.rules.fields import (
    age_header,
    cache_status,
    storage_headers,
)


def test_storage_drops_hop_by_hop_and_proxy_fields_and_keeps_cookies() -> None:
    received = [
        (b"Content-Type", b"text/plain"), (b"Connection", b"close, X-Hop"), (b"X-Hop", b"1"),
        (b"Keep-Alive", b"timeout=5"), (b"Transfer-Encoding", b"chunked"), (b"TE", b"x"),
        (b"Trailer", b"X-T"), (b"Upgrade", b"h2c"), (b"Proxy-Authenticate", b"Basic"),
        (b"Proxy-Authentication-Info", b"x"), (b"Set-Cookie", b"a=1"), (b"set-cookie2", b"b"),
        (b"Date", b"d"), (b"Age", b"3"), (b"Content-Length", b"5"), (b"ETag", b'"e"'),
    ]
    assert storage_headers(received) == [
        (b"Content-Type", b"text/plain"), (b"Set-Cookie", b"a=1"), (b"set-cookie2", b"b"),
        (b"Date", b"d"), (b"Age", b"3"), (b"Content-Length", b"5"), (b"ETag", b'"e"'),
    ]


def test_age_header() -> None:
    assert age_header(0) == b"0"
    assert age_header(41.9) == b"41"
    assert age_header(-3) == b"0"
    assert age_header(1e12) == b"2147483648"


def test_cache_status_values() -> None:
    assert cache_status(hit=True) == b"monkey_py; hit"
    assert cache_status(fwd="miss", stored=True) == b"monkey_py; fwd=miss; stored"
    assert cache_status(fwd="stale", fwd_status=304, ttl=60.9) == (
        b"monkey_py; fwd=stale; fwd-status=304; ttl=60")
    assert cache_status(hit=True, ttl=-4.5, detail="stale-while-revalidate") == (
        b"monkey_py; hit; ttl=-5; detail=stale-while-revalidate")
    assert cache_status(fwd="stale", fwd_status=502, detail="stale-if-error") == (
        b"monkey_py; fwd=stale; fwd-status=502; detail=stale-if-error")
    assert cache_status(fwd="uri-miss", collapsed=True, key='http://h/"a"') == (
        b'monkey_py; fwd=uri-miss; collapsed; key="http://h/\\"a\\""')


def test_cache_status_quotes_non_token_names_and_details() -> None:
    assert cache_status(hit=True, name="edge cache") == b'"edge cache"; hit'
    assert cache_status(fwd="miss", detail='too "large"') == (
        b'monkey_py; fwd=miss; detail="too \\"large\\""')


def test_a_response_without_date_is_stored_with_the_time_it_arrived() -> None:
    assert storage_headers([(b"ETag", b'"e"')], 784111777.0) == [
        (b"ETag", b'"e"'), (b"Date", b"Sun, 06 Nov 1994 08:49:37 GMT")]
    dated = [(b"date", b"Mon, 07 Nov 1994 08:49:37 GMT")]
    assert storage_headers(dated, 784111777.0) == dated
