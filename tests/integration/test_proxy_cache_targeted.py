"""Targeted cache control (RFC 9213) through the real proxy: CDN-Cache-Control, a field
of this cache's own, their precedence over Cache-Control and Expires, invalid values,
and CacheTargetedFields Off (docs/proxy_cache.md, Targeted cache control)."""

from __future__ import annotations

import pytest

from cache_support import Answer, date, fetches, own_target, start_over_store
from proxy_support import entry, start_proxy
from rawhttp import Client


@pytest.fixture(scope="module", params=["memory", "redis"])
def proxy(request, module_monkey, upstream, tmp_path_factory):
    return start_over_store(request, module_monkey, tmp_path_factory,
                            entry("^/", upstream, Cache="On"))


@pytest.fixture
def path(request):
    return own_target(request, "/t/")


def reused(port: int, upstream, path: str) -> bool:
    """Two GETs: whether the second was served from the cache."""
    with Client(port, timeout=10) as client:
        first = client.request("GET", path)
        second = client.request("GET", path)
    assert first.status == second.status == 200
    hit = (second.header("Cache-Status") or "").startswith("monkey_py; hit")
    assert fetches(upstream, path) == (1 if hit else 2)
    return hit


OLD = lambda: ("Date", date(-30))           # noqa: E731 - stale under a 10 s lifetime


@pytest.mark.parametrize("headers, hit", [
    (lambda: [("CDN-Cache-Control", "max-age=3600")], True),
    (lambda: [("CDN-Cache-Control", "max-age=99999999999")], True),
    (lambda: [("CDN-Cache-Control", "foobar, max-age=3600")], True),
    (lambda: [("CDN-Cache-Control", "max-age=0")], False),
    (lambda: [OLD(), ("CDN-Cache-Control", "max-age=3600"), ("Cache-Control", "max-age=10")],
     True),
    (lambda: [OLD(), ("CDN-Cache-Control", "max-age=10"), ("Cache-Control", "max-age=3600")],
     False),
    (lambda: [("CDN-Cache-Control", "max-age=3600"), ("Cache-Control", "no-store")], True),
    (lambda: [("CDN-Cache-Control", "no-store"), ("Cache-Control", "max-age=3600")], False),
    (lambda: [("CDN-Cache-Control", "private"), ("Cache-Control", "max-age=3600")], False),
    (lambda: [("CDN-Cache-Control", "no-cache"), ("Cache-Control", "max-age=3600"),
              ("ETag", '"e"')], False),
    (lambda: [("Date", date()), ("CDN-Cache-Control", "max-age=3600"),
              ("Expires", date(-100))], True),
    (lambda: [("Date", date()), ("CDN-Cache-Control", "max-age=0"),
              ("Expires", date(3600))], False),
    # An invalid targeted field is ignored: Cache-Control decides.
    (lambda: [("CDN-Cache-Control", "max-age=10000, &&&&&"), ("Cache-Control", "no-store")],
     False),
    (lambda: [("CDN-Cache-Control", "MaX-aGe=3600"), ("Cache-Control", "no-store")], False),
    (lambda: [("CDN-Cache-Control", "max-age =100"), ("Cache-Control", "max-age=3600")],
     True),
    # A valid field with a value of the wrong type: that directive does not count.
    (lambda: [("CDN-Cache-Control", 'max-age="10000"'), ("Cache-Control", "max-age=3600")],
     False),
    (lambda: [("CDN-Cache-Control", "max-age=1.5"), ("Cache-Control", "max-age=3600")],
     False),
], ids=["max-age", "max-age-large", "extension", "max-age-0", "longer-than-cc",
        "shorter-than-cc", "over-cc-no-store", "no-store-over-cc", "private", "no-cache",
        "expires-ignored", "expires-ignored-0", "invalid-member", "upper-case-key",
        "space-before-equals", "string-max-age", "decimal-max-age"])
def test_cdn_cache_control_takes_precedence(proxy, upstream, routes, path, headers, hit):
    routes.set(path, Answer(body=b"targeted", headers=headers()))
    assert reused(proxy.port, upstream, path) is hit


def test_the_targeted_field_is_passed_on(proxy, routes, path):
    routes.set(path, Answer(body=b"x", headers=[("CDN-Cache-Control", "max-age=60"),
                                                ("Cache-Control", "no-store")]))
    with Client(proxy.port, timeout=10) as client:
        for _ in range(2):
            answer = client.request("GET", path)
            assert answer.header("CDN-Cache-Control") == "max-age=60"
            assert answer.header("Cache-Control") == "no-store"


def test_a_field_of_this_cache_comes_before_cdn_cache_control(module_monkey, upstream, routes,
                                                              path):
    own = start_proxy(module_monkey, entry("^/", upstream, Cache="On"),
                      CacheTargetedFields="Monkey-Cache-Control CDN-Cache-Control")
    routes.set(path, Answer(body=b"x", headers=[("Monkey-Cache-Control", "max-age=3600"),
                                                ("CDN-Cache-Control", "no-store")]))
    assert reused(own.port, upstream, path)
    routes.set(path + "/cdn", Answer(body=b"x", headers=[("CDN-Cache-Control", "no-store"),
                                                         ("Cache-Control", "max-age=60")]))
    assert not reused(own.port, upstream, path + "/cdn")


def test_targeted_fields_off_leaves_cache_control_alone(module_monkey, upstream, routes, path):
    plain = start_proxy(module_monkey, entry("^/", upstream, Cache="On"),
                        CacheTargetedFields="Off")
    routes.set(path, Answer(body=b"x", headers=[("CDN-Cache-Control", "max-age=3600"),
                                                ("Cache-Control", "no-store")]))
    assert not reused(plain.port, upstream, path)
