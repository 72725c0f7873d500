"""Partial content through the real proxy and both stores: a 206 is kept as a part and
answers the range requests that lie within it (RFC 9111 §3.3, §4); parts never stand
for the complete response (docs/proxy_cache.md, Serving from the cache)."""

from __future__ import annotations

import re

import pytest

from cache_support import Answer, Routes, date, fetches, received_for
from proxy_support import entry, start_proxy
from rawhttp import Client
from upstreams import Upstreams

BODY = bytes(range(100))
RANGE = re.compile(r"bytes=(\d+)-(\d+)")


def ranged(*headers: tuple[str, str], span_error: int = 0):
    """An upstream answering ``bytes=a-b`` with a 206 of BODY, anything else with 200."""
    def answer(exchange) -> Answer:
        match = RANGE.fullmatch(exchange.request.header("Range") or "")
        if match is None:
            return Answer(body=BODY, headers=list(headers))
        first, last = int(match[1]), int(match[2])
        return Answer(206, BODY[first:last + 1], [
            *headers, ("Content-Range", f"bytes {first}-{last + span_error}/{len(BODY)}")])
    return answer


@pytest.fixture(scope="module")
def upstream():
    with Upstreams() as start:
        yield start("origin", Routes())


@pytest.fixture(scope="module", params=["memory", "disk"])
def proxy(request, module_monkey, upstream, tmp_path_factory):
    store = {"CacheStore": "disk", "CacheDirectory": str(tmp_path_factory.mktemp("cache"))
             } if request.param == "disk" else {}
    return start_proxy(module_monkey, entry("^/", upstream, Cache="On"), **store)


@pytest.fixture
def routes(upstream):
    return upstream.behaviour


@pytest.fixture
def path(request):
    return "/p/" + re.sub(r"\W", "_", request.node.name)


def get(proxy, path: str, *headers: tuple[str, str], method: str = "GET"):
    with Client(proxy.port, timeout=10) as client:
        return client.request(method, path, headers=list(headers))


def is_hit(response) -> bool:
    return (response.header("Cache-Status") or "").startswith("monkey_py; hit")


def test_a_part_answers_the_ranges_within_it(proxy, upstream, routes, path):
    routes.set(path, ranged(("Cache-Control", "max-age=600"), ("ETag", '"p"')))
    first = get(proxy, path, ("Range", "bytes=10-29"))
    assert first.status == 206 and "stored" in first.header("Cache-Status")
    for asked, span in (("bytes=10-29", (10, 29)), ("bytes=12-15", (12, 15)),
                        ("bytes=20-29", (20, 29))):
        answer = get(proxy, path, ("Range", asked))
        assert answer.status == 206 and is_hit(answer), asked
        assert answer.body == BODY[span[0]:span[1] + 1]
        assert answer.header("Content-Range") == f"bytes {span[0]}-{span[1]}/100"
        assert answer.header("Content-Length") == str(span[1] - span[0] + 1)
    assert fetches(upstream, path) == 1
    # Outside the part, another part of it, or the whole: the upstream answers.
    outside = get(proxy, path, ("Range", "bytes=25-40"))
    assert outside.status == 206 and not is_hit(outside)
    assert outside.body == BODY[25:41]
    whole = get(proxy, path)
    assert whole.status == 200 and whole.body == BODY and not is_hit(whole)
    assert received_for(upstream, path)[-1].header("Range") is None
    # Now the complete response is stored: it answers every range.
    assert is_hit(get(proxy, path, ("Range", "bytes=50-60")))
    assert fetches(upstream, path) == 3


def test_a_part_is_not_used_when_if_range_does_not_match(proxy, upstream, routes, path):
    routes.set(path, ranged(("Cache-Control", "max-age=600"), ("ETag", '"p"')))
    get(proxy, path, ("Range", "bytes=0-9"))
    assert is_hit(get(proxy, path, ("Range", "bytes=0-9"), ("If-Range", '"p"')))
    other = get(proxy, path, ("Range", "bytes=0-9"), ("If-Range", '"q"'))
    assert not is_hit(other)
    assert fetches(upstream, path) == 2


def test_a_part_whose_bytes_do_not_match_its_content_range_is_not_kept(proxy, upstream,
                                                                      routes, path):
    routes.set(path, ranged(("Cache-Control", "max-age=600"), span_error=1))
    get(proxy, path, ("Range", "bytes=0-9"))
    assert not is_hit(get(proxy, path, ("Range", "bytes=0-9")))
    assert fetches(upstream, path) == 2


def test_a_part_gets_heuristic_freshness_like_a_200(proxy, upstream, routes, path):
    routes.set(path, ranged(("Date", date()), ("Last-Modified", date(-86400))))
    get(proxy, path, ("Range", "bytes=0-9"))
    assert is_hit(get(proxy, path, ("Range", "bytes=0-9")))
    assert fetches(upstream, path) == 1


def test_purge_removes_the_part_too(proxy, upstream, routes, path):
    routes.set(path, ranged(("Cache-Control", "max-age=600")))
    get(proxy, path, ("Range", "bytes=0-9"))
    assert get(proxy, path, method="PURGE").status == 200
    assert not is_hit(get(proxy, path, ("Range", "bytes=0-9")))
    assert fetches(upstream, path) == 2
