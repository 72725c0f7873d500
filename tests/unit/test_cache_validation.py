"""Revalidation, 304 freshening and conditional requests answered by the cache (RFC 9111 §4.3)."""

from __future__ import annotations

from monkey_py.static.conditional import http_date
from monkey_py_plugins.proxy_reverse.cache.rules.validation import (
    client_not_modified,
    conditional_headers,
    not_modified_matches,
    updated_headers,
)
from monkey_py_plugins.proxy_reverse.cache.stores.store import Meta

T0 = 1_700_000_000.0
MODIFIED = http_date(T0 - 3600).encode()


def test_conditional_headers_from_both_validators() -> None:
    stored = [(b"ETag", b' "v1" '), (b"Last-Modified", MODIFIED)]
    assert conditional_headers(stored) == [
        (b"if-none-match", b'"v1"'), (b"if-modified-since", MODIFIED)]


def test_conditional_headers_with_one_or_no_validator() -> None:
    assert conditional_headers([(b"etag", b'W/"v1"')]) == [(b"if-none-match", b'W/"v1"')]
    assert conditional_headers([(b"Last-Modified", MODIFIED)]) == [
        (b"if-modified-since", MODIFIED)]
    assert conditional_headers([(b"Date", MODIFIED)]) == []


# -- which stored response a 304 freshens ----------------------------------------------------
def test_strong_etag_must_match_strongly() -> None:
    assert not_modified_matches([(b"ETag", b'"a"')], [(b"ETag", b'"a"')])
    assert not not_modified_matches([(b"ETag", b'"a"')], [(b"ETag", b'"b"')])
    assert not not_modified_matches([(b"ETag", b'W/"a"')], [(b"ETag", b'"a"')])
    assert not not_modified_matches([], [(b"ETag", b'"a"')])


def test_weak_etag_matches_weakly() -> None:
    assert not_modified_matches([(b"ETag", b'W/"a"')], [(b"ETag", b'W/"a"')])
    assert not_modified_matches([(b"ETag", b'"a"')], [(b"ETag", b'W/"a"')])
    assert not not_modified_matches([(b"ETag", b'W/"a"')], [(b"ETag", b'W/"b"')])


def test_last_modified_must_match() -> None:
    other = http_date(T0).encode()
    assert not_modified_matches([(b"Last-Modified", MODIFIED)], [(b"Last-Modified", MODIFIED)])
    assert not not_modified_matches([(b"Last-Modified", MODIFIED)], [(b"Last-Modified", other)])
    assert not not_modified_matches([], [(b"Last-Modified", MODIFIED)])


def test_a_304_without_validators_answers_for_the_revalidated_response() -> None:
    assert not_modified_matches([(b"ETag", b'"a"')], [(b"Cache-Control", b"max-age=5")])
    assert not_modified_matches([], [])


# -- updating the stored headers (§3.2) ------------------------------------------------------
def test_304_fields_replace_stored_ones_and_others_are_kept() -> None:
    stored = [
        (b"Content-Type", b"text/html"), (b"Cache-Control", b"max-age=10"),
        (b"Date", b"old"), (b"X-Multi", b"1"), (b"X-Multi", b"2"), (b"ETag", b'"a"'),
    ]
    fresh = [(b"cache-control", b"max-age=60"), (b"Date", b"new"), (b"x-multi", b"3")]
    assert updated_headers(stored, fresh) == [
        (b"Content-Type", b"text/html"), (b"ETag", b'"a"'),
        (b"cache-control", b"max-age=60"), (b"Date", b"new"), (b"x-multi", b"3"),
    ]


def test_a_304_restarts_the_age() -> None:
    stored = [(b"Age", b"500"), (b"Cache-Control", b"max-age=600")]
    assert updated_headers(stored, [(b"ETag", b'"b"')]) == [
        (b"Cache-Control", b"max-age=600"), (b"ETag", b'"b"')]
    assert updated_headers(stored, [(b"Age", b"3")]) == [
        (b"Cache-Control", b"max-age=600"), (b"Age", b"3")]


def test_fields_a_304_never_updates() -> None:
    stored = [(b"Content-Length", b"10"), (b"Content-Encoding", b"gzip"), (b"Vary", b"Accept")]
    fresh = [
        (b"Content-Length", b"0"), (b"Content-Encoding", b"br"), (b"Vary", b"*"),
        (b"Content-Range", b"bytes 0-1/2"), (b"Transfer-Encoding", b"chunked"),
        (b"Connection", b"X-Hop"), (b"X-Hop", b"1"), (b"Keep-Alive", b"timeout=5"),
        (b"Proxy-Authenticate", b"Basic"), (b"ETag", b'"b"'),
    ]
    assert updated_headers(stored, fresh) == stored + [(b"ETag", b'"b"')]


# -- the client's own conditional request ----------------------------------------------------
def req(*fields: tuple[bytes, bytes]):
    return list(fields)


def not_modified(request, stored_headers, response_time: float) -> bool:
    """client_not_modified for a stored response with these headers, received then."""
    return client_not_modified(request, Meta(200, stored_headers, response_time,
                                             response_time))


def test_if_none_match_weak_comparison_and_star() -> None:
    stored = [(b"ETag", b'"v1"'), (b"Last-Modified", MODIFIED)]
    assert not_modified(req((b"if-none-match", b'W/"v1"')), stored, T0)
    assert not_modified(req((b"if-none-match", b'"x", "v1"')), stored, T0)
    assert not_modified(req((b"if-none-match", b"*")), stored, T0)
    assert not not_modified(req((b"if-none-match", b'"v2"')), stored, T0)


def test_if_none_match_takes_precedence_over_if_modified_since() -> None:
    stored = [(b"ETag", b'"v1"'), (b"Last-Modified", MODIFIED)]
    request = req((b"if-none-match", b'"v2"'), (b"if-modified-since", MODIFIED))
    assert not not_modified(request, stored, T0)


def test_if_none_match_without_a_stored_etag() -> None:
    stored = [(b"Last-Modified", MODIFIED)]
    assert not not_modified(req((b"if-none-match", b"")), stored, T0)
    assert not not_modified(req((b"if-none-match", b'"v1"'),
                                       (b"if-modified-since", MODIFIED)), stored, T0)
    assert not_modified(req((b"if-none-match", b"*")), stored, T0)


def test_if_modified_since_against_last_modified() -> None:
    stored = [(b"Last-Modified", MODIFIED)]
    assert not_modified(req((b"if-modified-since", MODIFIED)), stored, T0)
    earlier = http_date(T0 - 3601).encode()
    assert not not_modified(req((b"if-modified-since", earlier)), stored, T0)
    assert not not_modified(req((b"if-modified-since", b"garbage")), stored, T0)


def test_if_modified_since_falls_back_to_date_then_receipt_time() -> None:
    date = http_date(T0 - 60).encode()
    since = req((b"if-modified-since", date))
    assert not_modified(since, [(b"Date", date)], T0)
    assert not not_modified(since, [], T0)
    assert not_modified(since, [], T0 - 60)


def test_if_match_and_if_unmodified_since_are_not_evaluated_by_the_cache() -> None:
    stored = [(b"ETag", b'"v1"'), (b"Last-Modified", MODIFIED)]
    request = req((b"if-match", b'"other"'), (b"if-none-match", b'"v1"'))
    assert not_modified(request, stored, T0)
    request = req((b"if-unmodified-since", http_date(0).encode()),
                  (b"if-modified-since", MODIFIED))
    assert not_modified(request, stored, T0)


def test_unconditional_request() -> None:
    assert not not_modified([], [(b"ETag", b'"v1"')], T0)
