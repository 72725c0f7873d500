"""The proxy's response cache under RFC 9111, rule by rule, through the real proxy and a
real upstream whose answers each test scripts (docs/proxy_cache.md)."""

from __future__ import annotations

import re
import time

import pytest

from cache_support import (
    Answer, date, fetches, received_for, start_over_store,
)
from proxy_support import assert_settled, entry, get, start_proxy
from rawhttp import Client
from support import section, site

MAX_AGE = [("Cache-Control", "max-age=60")]


@pytest.fixture(scope="module", params=["memory", "redis", "redis+tier"])
def proxy(request, module_monkey, upstream, tmp_path_factory):
    docroot = tmp_path_factory.mktemp("htdocs")
    sites = {
        "default": site("localhost 127.0.0.1", docroot),
        "nocache": site("nocache.test", docroot, section("PROXY_REVERSE", "Cache Off")),
        "cacheon": site("cacheon.test", docroot, section("PROXY_REVERSE", "Cache On")),
    }
    return start_over_store(request, module_monkey, tmp_path_factory,
                            entry("^/plain/", upstream), entry("^/", upstream, Cache="On"),
                            sites=sites)


@pytest.fixture(autouse=True)
def settled(proxy):
    """After each test every upstream attempt has ended, background ones included."""
    yield
    assert_settled(proxy.port)


@pytest.fixture
def path(request):
    """A target of this test's own."""
    return "/c/" + re.sub(r"\W", "_", request.node.name)


def fetch(proxy, target: str, method: str = "GET", headers=(), host: str = "localhost"):
    with Client(proxy.port) as client:
        return client.request(method, target, headers=list(headers), host=host)


def cache_status(response) -> str:
    return response.header("Cache-Status") or ""


def ttl(response) -> int:
    return int(re.search(r"ttl=(-?\d+)", cache_status(response)).group(1))


def is_hit(response) -> bool:
    return "; hit" in cache_status(response) and "fwd=" not in cache_status(response)


# -- storing and serving -------------------------------------------------------------------
def test_a_cacheable_response_is_stored_then_served_without_the_upstream(proxy, upstream,
                                                                        routes, path):
    routes.set(path, Answer(body=b"cached body", headers=[*MAX_AGE, ("X-Kept", "yes")]))
    first = fetch(proxy, path)
    assert first.status == 200 and first.body == b"cached body"
    assert cache_status(first) == "monkey_py; fwd=miss; fwd-status=200; stored"
    second = fetch(proxy, path)
    assert second.status == 200 and second.body == b"cached body"
    assert is_hit(second) and 58 <= ttl(second) <= 60
    assert second.header("X-Kept") == "yes" and second.header("Content-Length") == "11"
    assert second.header("Age") == "0"
    assert len(second.header_all("Date")) == 1 and len(second.header_all("Via")) == 1
    assert fetches(upstream, path) == 1


@pytest.mark.parametrize("status", [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501])
def test_heuristically_cacheable_statuses_are_stored_with_explicit_freshness(
        proxy, upstream, routes, path, status):
    routes.set(path, Answer(status, b"" if status == 204 else b"body", MAX_AGE))
    assert fetch(proxy, path).status == status
    second = fetch(proxy, path)
    assert second.status == status and is_hit(second)
    assert fetches(upstream, path) == 1


@pytest.mark.parametrize("status, headers, stored", [
    (302, [], False),                      # no freshness, not heuristically cacheable
    (302, MAX_AGE, True),                  # any final status with explicit freshness
    (500, [], False),
    (500, MAX_AGE, True),
    (200, [], False),                      # no freshness and no Last-Modified
    (200, [("Cache-Control", "max-age=60, no-store")], False),
    (200, [("Cache-Control", "max-age=60, private")], False),
    (200, [("Cache-Control", "max-age=60"), ("Vary", "*")], False),
    (200, [("Cache-Control", "max-age=60"), ("Set-Cookie", "id=1")], True),
])
def test_what_is_stored(proxy, upstream, routes, path, status, headers, stored):
    routes.set(path, Answer(status, b"x", headers))
    fetch(proxy, path)
    second = fetch(proxy, path)
    assert second.status == status
    assert is_hit(second) is stored
    assert fetches(upstream, path) == (1 if stored else 2)


def test_a_request_with_no_store_is_not_stored(proxy, upstream, routes, path):
    routes.set(path, Answer(body=b"x", headers=MAX_AGE))
    first = fetch(proxy, path, headers=[("Cache-Control", "no-store")])
    assert "stored" not in cache_status(first)
    assert not is_hit(fetch(proxy, path))
    assert fetches(upstream, path) == 2


def test_set_cookie_is_stored_and_replayed(proxy, upstream, routes, path):
    routes.set(path, Answer(body=b"x", headers=[
        ("Cache-Control", "max-age=60"), ("Set-Cookie", "a=b"), ("Set-Cookie", "c=d; Path=/"),
        ("Set-Cookie2", "e=f")]))
    first = fetch(proxy, path)
    assert "stored" in cache_status(first)
    second = fetch(proxy, path)
    assert is_hit(second)
    assert second.header_all("Set-Cookie") == ["a=b", "c=d; Path=/"]
    assert second.header("Set-Cookie2") == "e=f"
    assert fetches(upstream, path) == 1


def test_cache_skip_set_cookie_keeps_cookies_out_of_the_cache(module_monkey, upstream, routes,
                                                              path):
    refusing = start_proxy(module_monkey, entry("^/", upstream, Cache="On"),
                           CacheSkipSetCookie="On")
    routes.set(path, Answer(body=b"x", headers=[("Cache-Control", "max-age=60"),
                                                ("Set-Cookie", "session=mine")]))
    routes.set(path + "/plain", Answer(body=b"x", headers=[("Cache-Control", "max-age=60")]))
    for _ in range(2):
        answer = get(refusing.port, path)
        assert answer.header("Set-Cookie") == "session=mine" and not is_hit(answer)
    assert fetches(upstream, path) == 2
    get(refusing.port, path + "/plain")
    assert is_hit(get(refusing.port, path + "/plain"))


@pytest.mark.parametrize("directive, shared", [
    ("max-age=60", False), ("public, max-age=60", True), ("s-maxage=60", True),
    ("max-age=60, must-revalidate", True),
])
def test_authorization_requests_are_shared_only_when_the_response_allows(
        proxy, upstream, routes, path, directive, shared):
    routes.set(path, Answer(body=b"for alice", headers=[("Cache-Control", directive)]))
    auth = [("Authorization", "Basic YWxpY2U6c2VjcmV0")]
    fetch(proxy, path, headers=auth)
    second = fetch(proxy, path, headers=auth)
    assert is_hit(second) is shared
    assert fetches(upstream, path) == (1 if shared else 2)


# -- freshness and age ----------------------------------------------------------------------
@pytest.mark.parametrize("headers, expected_ttl", [
    (lambda: [("Cache-Control", "max-age=100, s-maxage=30"), ("Expires", date(500))], 30),
    (lambda: [("Cache-Control", "max-age=100"), ("Expires", date(500))], 100),
    (lambda: [("Date", date()), ("Expires", date(200))], 200),
    (lambda: [("Date", date()), ("Last-Modified", date(-1000))], 100),   # heuristic: 10%
], ids=["s-maxage", "max-age", "expires", "heuristic"])
def test_freshness_lifetime_order(proxy, routes, path, headers, expected_ttl):
    routes.set(path, Answer(body=b"x", headers=headers()))
    fetch(proxy, path)
    second = fetch(proxy, path)
    assert is_hit(second)
    assert expected_ttl - 3 <= ttl(second) <= expected_ttl


@pytest.mark.parametrize("status, directive, stored", [
    (302, "", False),            # not heuristically cacheable
    (302, "public", True),       # public allows the heuristic
    (200, "", True),
])
def test_heuristic_freshness_only_where_allowed(proxy, upstream, routes, path, status,
                                                directive, stored):
    headers = [("Date", date()), ("Last-Modified", date(-1000))]
    if directive:
        headers.append(("Cache-Control", directive))
    routes.set(path, Answer(status, b"x", headers))
    fetch(proxy, path)
    assert is_hit(fetch(proxy, path)) is stored


def test_expires_in_the_past_is_stale_at_once(proxy, upstream, routes, path):
    routes.set(path, Answer(body=b"x", headers=[("Date", date()), ("Expires", date(-10))]))
    fetch(proxy, path)
    assert not is_hit(fetch(proxy, path))
    assert fetches(upstream, path) == 2


def test_age_counts_the_upstreams_age_the_date_and_the_time_in_the_cache(
        proxy, routes, path):
    routes.set(path, Answer(body=b"x", headers=[("Date", date(-20)), ("Age", "5"),
                                                ("Cache-Control", "max-age=600")]))
    fetch(proxy, path)
    time.sleep(1.1)
    second = fetch(proxy, path)
    # The upstream said Age 5, but its Date is 20 s old: the larger wins, plus a second here.
    assert 21 <= int(second.header("Age")) <= 23
    assert 600 - 23 <= ttl(second) <= 600 - 21


# -- request directives --------------------------------------------------------------------
def stale_with_etag(routes, path, *extra: str) -> None:
    """A response stored stale (its Date is old) with an ETag; 304s afterwards."""
    routes.set(path, Answer(body=b"old body", headers=[
        ("Date", date(-30)), ("Cache-Control", ", ".join(["max-age=10", *extra])),
        ("ETag", '"v1"')]), Answer(304, headers=[("ETag", '"v1"'), ("Date", date()),
                                                 ("Cache-Control", "max-age=100")]))


@pytest.mark.parametrize("headers", [
    [("Cache-Control", "no-cache")], [("Pragma", "no-cache")], [("Cache-Control", "max-age=0")],
    [("Cache-Control", "min-fresh=100")],
])
def test_request_directives_make_the_cache_revalidate(proxy, upstream, routes, path, headers):
    routes.set(path, Answer(body=b"v1", headers=[*MAX_AGE, ("ETag", '"v1"')]),
               Answer(304, headers=[("ETag", '"v1"')]))
    fetch(proxy, path)
    time.sleep(1.1)
    second = fetch(proxy, path, headers=headers)
    assert second.status == 200 and second.body == b"v1"
    assert "fwd=request" in cache_status(second) and "fwd-status=304" in cache_status(second)
    assert received_for(upstream, path)[-1].header("If-None-Match") == '"v1"'


def test_pragma_no_cache_is_ignored_next_to_cache_control(proxy, routes, path):
    routes.set(path, Answer(body=b"x", headers=MAX_AGE))
    fetch(proxy, path)
    assert is_hit(fetch(proxy, path, headers=[("Pragma", "no-cache"),
                                              ("Cache-Control", "max-stale=5")]))


def test_max_stale_accepts_a_stale_response(proxy, upstream, routes, path):
    stale_with_etag(routes, path)
    fetch(proxy, path)
    second = fetch(proxy, path, headers=[("Cache-Control", "max-stale=60")])
    assert second.body == b"old body" and "detail=max-stale" in cache_status(second)
    assert ttl(second) < 0
    too_old = fetch(proxy, path, headers=[("Cache-Control", "max-stale=5")])
    assert "fwd=stale" in cache_status(too_old)
    assert fetches(upstream, path) == 2


def test_only_if_cached_is_504_on_a_miss_and_served_on_a_hit(proxy, upstream, routes, path):
    routes.set(path, Answer(body=b"x", headers=MAX_AGE))
    only = [("Cache-Control", "only-if-cached")]
    miss = fetch(proxy, path, headers=only)
    assert miss.status == 504 and "Cache-Status" in dict(miss.headers)
    assert fetches(upstream, path) == 0
    fetch(proxy, path)
    assert fetch(proxy, path, headers=only).status == 200
    assert fetches(upstream, path) == 1


# -- Vary ------------------------------------------------------------------------------------
def test_vary_selects_the_stored_variant(proxy, upstream, routes, path):
    def by_encoding(exchange):
        encoding = exchange.request.header("Accept-Encoding") or "identity"
        return Answer(body=encoding.encode(), headers=[*MAX_AGE, ("Vary", "Accept-Encoding")])
    routes.set(path, by_encoding)
    gzip = [("Accept-Encoding", "gzip")]
    assert fetch(proxy, path, headers=gzip).body == b"gzip"
    brotli = fetch(proxy, path, headers=[("Accept-Encoding", "br")])
    assert brotli.body == b"br" and not is_hit(brotli)
    again = fetch(proxy, path, headers=[("Accept-Encoding", " gzip ")])
    assert again.body == b"gzip" and is_hit(again)
    assert fetch(proxy, path).body == b"identity"
    assert fetches(upstream, path) == 3


@pytest.mark.parametrize("stored, asked, reused", [
    ("en, de", " en ,   de", True),
    ("en, de", "eN, De", True),
    ("en, de;q=0.50", "en,de; q=0.5", True),
    ("en;q=1.0, de", "en, de", True),
    ("en, de", "de, en", False),            # the order may be a preference: kept
    ("en, de", "fr;q=0.5, de;q=1.0", False),
])
def test_vary_on_accept_language_is_normalised_conservatively(proxy, upstream, routes, path,
                                                              stored, asked, reused):
    routes.set(path, Answer(body=b"x", headers=[*MAX_AGE, ("Vary", "Accept-Language"),
                                                ("Content-Language", "de")]))
    fetch(proxy, path, headers=[("Accept-Language", stored)])
    second = fetch(proxy, path, headers=[("Accept-Language", asked)])
    assert is_hit(second) is reused
    assert fetches(upstream, path) == (1 if reused else 2)


def test_vary_on_accept_encoding_ignores_case_and_blanks(proxy, upstream, routes, path):
    routes.set(path, Answer(body=b"x", headers=[*MAX_AGE, ("Vary", "Accept-Encoding")]))
    fetch(proxy, path, headers=[("Accept-Encoding", "gzip, deflate, br")])
    assert is_hit(fetch(proxy, path, headers=[("Accept-Encoding", "GZIP,Deflate , br")]))
    assert not is_hit(fetch(proxy, path, headers=[("Accept-Encoding", "br, gzip, deflate")]))


# -- revalidation -------------------------------------------------------------------------
def test_a_stale_response_is_revalidated_and_updated_by_a_304(proxy, upstream, routes, path):
    routes.set(path, Answer(body=b"the body", headers=[
        ("Date", date(-30)), ("Cache-Control", "max-age=10"), ("ETag", '"v1"'),
        ("Last-Modified", date(-3600)), ("X-Version", "1")]),
        Answer(304, headers=[("ETag", '"v1"'), ("Date", date()), ("X-Version", "2"),
                             ("Cache-Control", "max-age=100")]))
    fetch(proxy, path)
    second = fetch(proxy, path)
    assert second.status == 200 and second.body == b"the body"
    assert second.header("X-Version") == "2"
    assert cache_status(second).startswith("monkey_py; fwd=stale; fwd-status=304")
    conditional = received_for(upstream, path)[-1]
    assert conditional.header("If-None-Match") == '"v1"'
    assert conditional.header("If-Modified-Since") is not None
    third = fetch(proxy, path)
    assert is_hit(third) and third.header("X-Version") == "2" and 97 <= ttl(third) <= 100
    assert fetches(upstream, path) == 2


def test_a_changed_resource_replaces_the_stored_one(proxy, upstream, routes, path):
    routes.set(path, Answer(body=b"v1", headers=[("Date", date(-30)), ("ETag", '"v1"'),
                                                 ("Cache-Control", "max-age=10")]),
               Answer(body=b"v2", headers=[("ETag", '"v2"'), *MAX_AGE]))
    fetch(proxy, path)
    assert fetch(proxy, path).body == b"v2"
    third = fetch(proxy, path)
    assert third.body == b"v2" and is_hit(third)


def test_the_clients_conditional_request_is_answered_304_from_the_cache(
        proxy, upstream, routes, path):
    modified = date(-3600)
    routes.set(path, Answer(body=b"x", headers=[*MAX_AGE, ("ETag", '"v1"'),
                                                ("Last-Modified", modified)]))
    fetch(proxy, path)
    same = fetch(proxy, path, headers=[("If-None-Match", '"v0", "v1"')])
    assert same.status == 304 and same.body == b"" and same.header("ETag") == '"v1"'
    assert is_hit(same) and same.header("Age") is not None
    assert fetch(proxy, path, headers=[("If-None-Match", '"v2"')]).status == 200
    assert fetch(proxy, path, headers=[("If-Modified-Since", modified)]).status == 304
    assert fetch(proxy, path, headers=[("If-Modified-Since", date(-7200))]).status == 200
    assert fetches(upstream, path) == 1


def test_head_is_answered_from_a_stored_get(proxy, upstream, routes, path):
    routes.set(path, Answer(body=b"0123456789", headers=MAX_AGE))
    fetch(proxy, path)
    head = fetch(proxy, path, method="HEAD")
    assert head.status == 200 and head.header("Content-Length") == "10" and is_hit(head)
    assert fetches(upstream, path) == 1


def test_a_head_that_misses_fills_the_cache_with_a_get(proxy, upstream, routes, path):
    routes.set(path, Answer(body=b"0123456789", headers=MAX_AGE))
    with Client(proxy.port) as client:
        head = client.request("HEAD", path)
        assert head.header("Content-Length") == "10" and head.body == b""
        assert "stored" in cache_status(head)
        # The connection goes on: the HEAD got no body, the GET gets it whole.
        assert upstream.wait_until(lambda up: fetches(up, path) == 1)
        hit = client.request("GET", path)
    assert hit.body == b"0123456789"
    assert [r.method for r in received_for(upstream, path)] == ["GET"]


def test_a_head_that_cannot_fill_the_cache_does_not_fetch_the_body(proxy, upstream, routes,
                                                                   path):
    routes.set(path, Answer(body=b"x" * 300_000, headers=[("Cache-Control", "no-store")]))
    head = fetch(proxy, path, method="HEAD")
    assert head.status == 200 and head.header("Content-Length") == "300000"
    assert head.body == b""
    # Nobody needs the body: the proxy drops that upstream connection.
    (asked,) = received_for(upstream, path)
    assert asked.method == "GET" and upstream.wait_closed_by_peer(asked.connection)
    answer = fetch(proxy, path)
    assert answer.body == b"x" * 300_000


# -- ranges ----------------------------------------------------------------------------------
def test_ranges_are_served_from_a_stored_full_response(proxy, upstream, routes, path):
    body = bytes(range(256)) * 4
    routes.set(path, Answer(body=body, headers=[*MAX_AGE, ("Content-Type", "app/x"),
                                                ("ETag", '"r1"')]))
    fetch(proxy, path)
    one = fetch(proxy, path, headers=[("Range", "bytes=10-19")])
    assert one.status == 206 and one.body == body[10:20] and is_hit(one)
    assert one.header("Content-Range") == f"bytes 10-19/{len(body)}"
    suffix = fetch(proxy, path, headers=[("Range", "bytes=-5")])
    assert suffix.status == 206 and suffix.body == body[-5:]
    many = fetch(proxy, path, headers=[("Range", "bytes=0-1,100-101")])
    assert many.status == 206
    assert many.header("Content-Type").startswith("multipart/byteranges; boundary=")
    assert body[0:2] in many.body and body[100:102] in many.body
    assert b"Content-Type: app/x" in many.body
    refused = fetch(proxy, path, headers=[("Range", "bytes=5000-")])
    assert refused.status == 416 and refused.header("Content-Range") == f"bytes */{len(body)}"
    other_version = fetch(proxy, path, headers=[("Range", "bytes=0-1"), ("If-Range", '"r0"')])
    assert other_version.status == 200 and other_version.body == body
    assert fetches(upstream, path) == 1


# -- invalidation -----------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_a_successful_unsafe_request_invalidates_its_target(proxy, upstream, routes, path,
                                                            method):
    routes.set(path, Answer(body=b"x", headers=MAX_AGE))
    fetch(proxy, path)
    body_headers = [("Content-Length", "0")] if method in ("POST", "PUT", "PATCH") else []
    changed = fetch(proxy, path, method=method, headers=body_headers)
    assert changed.status == 200 and "fwd=method" in cache_status(changed)
    assert not is_hit(fetch(proxy, path))
    assert fetches(upstream, path) == 3


def test_an_upload_through_a_cache_entry_reaches_the_upstream_whole(proxy, routes, path):
    routes.set(path, lambda exchange: Answer(body=exchange.request.body))
    body = bytes(range(256)) * 64
    with Client(proxy.port) as client:
        echoed = client.request("PUT", path, body=body,
                                headers=[("Content-Length", str(len(body)))])
    assert echoed.status == 200 and echoed.body == body


def test_location_and_content_location_of_the_same_host_are_invalidated(
        proxy, upstream, routes, path):
    for target in (path + "/a", path + "/b", path + "/c"):
        routes.set(target, Answer(body=b"x", headers=MAX_AGE))
        fetch(proxy, target)
    routes.set(path + "/form", Answer(201, b"made", [
        ("Location", path + "/a"), ("Content-Location", "http://localhost" + path + "/b")]))
    fetch(proxy, path + "/form", method="POST", headers=[("Content-Length", "0")])
    assert not is_hit(fetch(proxy, path + "/a"))
    assert not is_hit(fetch(proxy, path + "/b"))
    assert is_hit(fetch(proxy, path + "/c"))


def test_other_hosts_and_failed_requests_invalidate_nothing(proxy, routes, path):
    routes.set(path, Answer(body=b"x", headers=MAX_AGE))
    fetch(proxy, path)
    routes.set(path + "/elsewhere", Answer(201, headers=[
        ("Location", "http://other.example" + path)]))
    fetch(proxy, path + "/elsewhere", method="POST", headers=[("Content-Length", "0")])
    assert is_hit(fetch(proxy, path))
    routes.set(path + "/failing", Answer(500, headers=[("Location", path)]))
    fetch(proxy, path + "/failing", method="DELETE")
    routes.set(path, Answer(500), Answer(body=b"x", headers=MAX_AGE))
    assert fetch(proxy, path, method="DELETE").status == 500
    assert is_hit(fetch(proxy, path))


# -- serving stale -------------------------------------------------------------------------
def test_stale_while_revalidate_serves_stale_and_revalidates_once(proxy, upstream, routes,
                                                                  path):
    routes.set(path, Answer(body=b"old", headers=[
        ("Date", date(-30)), ("Cache-Control", "max-age=10, stale-while-revalidate=600"),
        ("ETag", '"v1"')]),
        Answer(304, headers=[("ETag", '"v1"'), ("Cache-Control", "max-age=100"),
                             ("Date", date())], delay=0.5))
    fetch(proxy, path)
    started = time.monotonic()
    answers = [fetch(proxy, path) for _ in range(5)]
    assert time.monotonic() - started < 0.4
    for answer in answers:
        assert answer.body == b"old" and "detail=stale-while-revalidate" in cache_status(answer)
    assert upstream.wait_until(lambda up: fetches(up, path) == 2)
    assert received_for(upstream, path)[-1].header("If-None-Match") == '"v1"'

    def freshened():
        answer = fetch(proxy, path)
        return is_hit(answer) and ttl(answer) > 90
    deadline = time.monotonic() + 3
    while not freshened():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert fetches(upstream, path) == 2


@pytest.mark.parametrize("failure", [Answer(503, b"down"), Answer(500), Answer(hang_up=True)])
def test_stale_if_error_serves_stale_when_the_upstream_fails(proxy, routes, path, failure):
    routes.set(path, Answer(body=b"old", headers=[
        ("Date", date(-30)), ("Cache-Control", "max-age=10, stale-if-error=600")]), failure)
    fetch(proxy, path)
    second = fetch(proxy, path)
    assert second.status == 200 and second.body == b"old"
    assert "fwd=stale" in cache_status(second) and "detail=stale-if-error" in cache_status(second)


def test_stale_if_error_of_the_request_counts_too(proxy, routes, path):
    routes.set(path, Answer(body=b"old", headers=[("Date", date(-30)),
                                                  ("Cache-Control", "max-age=10")]),
               Answer(502))
    fetch(proxy, path)
    assert fetch(proxy, path, headers=[("Cache-Control", "stale-if-error=600")]).body == b"old"
    assert fetch(proxy, path).status == 502


@pytest.mark.parametrize("directive", ["must-revalidate", "proxy-revalidate", "no-cache",
                                       "s-maxage=10"])
def test_stale_is_never_served_where_the_response_forbids_it(proxy, routes, path, directive):
    routes.set(path, Answer(body=b"old", headers=[
        ("Date", date(-30)),
        ("Cache-Control", f"max-age=10, {directive}, stale-if-error=600, "
                          "stale-while-revalidate=600")]), Answer(503, b"down"))
    fetch(proxy, path)
    assert fetch(proxy, path).status == 503
    assert fetch(proxy, path, headers=[("Cache-Control", "max-stale=600")]).status == 503


# -- visibility and switches --------------------------------------------------------------
def test_every_response_of_a_cache_entry_says_its_cache_status(proxy, routes, path):
    routes.set(path, Answer(body=b"x"))
    assert cache_status(fetch(proxy, path)) == "monkey_py; fwd=miss; fwd-status=200"
    posted = fetch(proxy, path, method="POST", headers=[("Content-Length", "0")])
    assert cache_status(posted) == "monkey_py; fwd=method; fwd-status=200"
    routes.set(path, Answer(hang_up=True))
    failed = fetch(proxy, path)
    assert failed.status == 502 and cache_status(failed) == "monkey_py; fwd=miss"


def test_an_entry_without_cache_says_nothing_and_stores_nothing(proxy, upstream, routes,
                                                                 path):
    plain = "/plain" + path
    routes.set(plain, Answer(body=b"x", headers=MAX_AGE))
    fetch(proxy, plain)
    assert fetch(proxy, plain).header("Cache-Status") is None
    assert fetches(upstream, plain) == 2


def test_a_site_turns_the_cache_off_or_on_for_its_host(proxy, upstream, routes, path):
    plain = "/plain" + path
    routes.set(path, Answer(body=b"x", headers=MAX_AGE))
    routes.set(plain, Answer(body=b"x", headers=MAX_AGE))
    for _ in range(2):
        assert fetch(proxy, path, host="nocache.test").header("Cache-Status") is None
    assert fetches(upstream, path) == 2
    fetch(proxy, plain, host="cacheon.test")
    assert is_hit(fetch(proxy, plain, host="cacheon.test"))
    assert fetches(upstream, plain) == 1


def test_a_hit_is_served_even_to_a_request_that_came_back_through_this_proxy(
        proxy, upstream, routes, path):
    routes.set(path, Answer(body=b"x", headers=MAX_AGE))
    via = fetch(proxy, path).header("Via")
    marked = [("Via", via)]
    assert fetch(proxy, path, headers=marked).status == 200
    assert fetch(proxy, path + "/not-cached", headers=marked).status == 508
    assert fetches(upstream, path) == 1


# -- immutable, s-maxage and private -------------------------------------------------------
@pytest.mark.parametrize("directive, request_cc, reused", [
    ("max-age=600, immutable", "max-age=0", True),       # a reload: not revalidated
    ("max-age=600, immutable", "no-cache", False),       # a forced reload: revalidated
    ("max-age=600", "max-age=0", False),
    ("max-age=600, immutable", "min-fresh=3600", False),
], ids=["immutable-reload", "immutable-no-cache", "plain-reload", "immutable-min-fresh"])
def test_immutable_spares_a_fresh_response_a_reload(proxy, upstream, routes, path, directive,
                                                    request_cc, reused):
    # Ten seconds old at arrival: older than the request's max-age=0 allows.
    routes.set(path, Answer(body=b"x", headers=[("Date", date(-10)),
                                                ("Cache-Control", directive),
                                                ("ETag", '"i"')]),
               Answer(304, headers=[("ETag", '"i"')]))
    fetch(proxy, path)
    second = fetch(proxy, path, headers=[("Cache-Control", request_cc)])
    assert second.status == 200 and is_hit(second) is reused
    assert fetches(upstream, path) == (1 if reused else 2)


def test_a_stale_immutable_response_is_revalidated(proxy, upstream, routes, path):
    routes.set(path, Answer(body=b"x", headers=[
        ("Date", date(-30)), ("Cache-Control", "max-age=10, immutable"), ("ETag", '"i"')]),
        Answer(304, headers=[("ETag", '"i"')]))
    fetch(proxy, path)
    assert "fwd=stale" in cache_status(fetch(proxy, path))
    assert received_for(upstream, path)[-1].header("If-None-Match") == '"i"'


@pytest.mark.parametrize("directive", [
    "s-maxage=600, private", "private, s-maxage=600, public", 's-maxage=600, private="X-A"',
])
def test_s_maxage_does_not_override_private(proxy, upstream, routes, path, directive):
    routes.set(path, Answer(body=b"x", headers=[("Cache-Control", directive)]))
    fetch(proxy, path)
    assert not is_hit(fetch(proxy, path))
    assert fetches(upstream, path) == 2


@pytest.mark.parametrize("status", [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501])
def test_heuristically_cacheable_statuses_are_reused_by_heuristic_freshness(
        proxy, upstream, routes, path, status):
    routes.set(path, Answer(status, b"" if status == 204 else b"body", [
        ("Date", date()), ("Last-Modified", date(-86400))]))
    fetch(proxy, path)
    second = fetch(proxy, path)
    assert second.status == status and is_hit(second)
    assert 8000 <= ttl(second) <= 8640
    assert fetches(upstream, path) == 1


@pytest.mark.parametrize("status", [201, 202, 302, 303, 307, 403, 500, 502, 503, 504, 599])
def test_other_statuses_get_no_heuristic_freshness(proxy, upstream, routes, path, status):
    routes.set(path, Answer(status, b"body", [("Date", date()),
                                              ("Last-Modified", date(-86400))]))
    fetch(proxy, path)
    assert not is_hit(fetch(proxy, path))
    assert fetches(upstream, path) == 2
