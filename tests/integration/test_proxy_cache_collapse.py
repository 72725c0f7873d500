"""Request collapsing: concurrent misses for one resource make one upstream request,
within a worker (memory store) and across workers (disk store), bounded by
CacheLockTimeout, without holding the loop."""

from __future__ import annotations

import threading
import time

import pytest

from cache_support import (
    Answer, cache_figures, concurrently, date, fetches, own_target, received_for,
    start_over_store,
)
from proxy_support import assert_settled, entry, start_proxy
from rawhttp import Client

MAX_AGE = [("Cache-Control", "max-age=600")]


@pytest.fixture(scope="module", params=["memory", "redis"])
def proxy(request, module_monkey, upstream, tmp_path_factory):
    return start_over_store(request, module_monkey, tmp_path_factory,
                            entry("^/short/", upstream, Cache="On", CacheLockTimeout="0.3"),
                            entry("^/", upstream, Cache="On"))


@pytest.fixture(scope="module")
def disk_proxy(module_monkey, upstream, tmp_path_factory):
    directory = tmp_path_factory.mktemp("cache")
    return start_proxy(module_monkey, entry("^/", upstream, Cache="On"), workers=2,
                       CacheStore="disk", CacheDirectory=str(directory))


@pytest.fixture(autouse=True)
def settled(proxy, upstream):
    """Each test counts the upstream's requests from its start (the tests run once per
    store, with the same targets); after it, every upstream attempt has ended,
    background ones included."""
    upstream.reset()
    yield
    assert_settled(proxy.port)


def at_once(port: int, target: str, count: int) -> list:
    """``count`` clients, each on its own connection, send GET ``target`` together."""
    return concurrently([(port, target)] * count, timeout=15)


def test_fifty_concurrent_misses_make_one_upstream_request(proxy, upstream, routes):
    routes.set("/fifty", Answer(body=b"slow and shared", headers=MAX_AGE, delay=0.5))
    before = cache_figures(proxy.port, 1)
    answers = at_once(proxy.port, "/fifty", 50)
    assert all(a.status == 200 and a.body == b"slow and shared" for a in answers)
    assert fetches(upstream, "/fifty") == 1
    statuses = sorted(a.header("Cache-Status") for a in answers)
    assert statuses.count("monkey_py; fwd=miss; fwd-status=200; stored") == 1
    assert all(s.startswith("monkey_py; hit;") and s.endswith("; collapsed")
               for s in statuses if "fwd=" not in s)
    after = cache_figures(proxy.port, 1)
    assert after["collapsed"] - before["collapsed"] == 49
    assert after["misses"] - before["misses"] == 1


def test_fifty_concurrent_misses_make_one_request_across_workers_with_the_disk_store(
        disk_proxy, upstream, routes, request):
    target = own_target(request, "/disk-fifty/")  # the test runs once per `proxy`
    routes.set(target, Answer(body=b"shared on disk", headers=MAX_AGE, delay=0.5))
    before = cache_figures(disk_proxy.port)["collapsed"]
    answers = at_once(disk_proxy.port, target, 50)
    assert all(a.status == 200 and a.body == b"shared on disk" for a in answers)
    assert fetches(upstream, target) == 1
    assert cache_figures(disk_proxy.port)["collapsed"] - before == 49


def test_waiters_go_upstream_themselves_after_the_lock_timeout(proxy, upstream, routes):
    routes.set("/short/slow", Answer(body=b"late", headers=MAX_AGE, delay=1.0))
    started = time.monotonic()
    answers = at_once(proxy.port, "/short/slow", 5)
    elapsed = time.monotonic() - started
    assert all(a.status == 200 and a.body == b"late" for a in answers)
    assert fetches(upstream, "/short/slow") == 5
    # The leader took 1 s; the others waited 0.3 s, then 1 s each, in parallel.
    assert 1.2 < elapsed < 2.2


def test_an_answer_that_is_not_stored_sends_the_waiters_upstream_at_once(
        proxy, upstream, routes):
    routes.set("/private", Answer(body=b"mine", delay=0.5,
                                  headers=[("Cache-Control", "private")]))
    started = time.monotonic()
    answers = at_once(proxy.port, "/private", 10)
    elapsed = time.monotonic() - started
    assert all(a.status == 200 and a.body == b"mine" for a in answers)
    assert fetches(upstream, "/private") == 10
    assert elapsed < 1.6  # two rounds of 0.5 s, not ten


def test_waiting_requests_do_not_hold_the_loop(proxy, upstream, routes):
    routes.set("/held", Answer(body=b"held", headers=MAX_AGE, delay=1.0))
    routes.set("/quick", Answer(body=b"quick", headers=MAX_AGE))
    with Client(proxy.port) as client:
        assert client.request("GET", "/quick").status == 200
    results: list = []
    waiting = threading.Thread(target=lambda: results.extend(at_once(proxy.port, "/held", 10)))
    waiting.start()
    assert upstream.wait_until(lambda up: fetches(up, "/held") == 1)
    started = time.monotonic()
    with Client(proxy.port) as client:
        quick = client.request("GET", "/quick")
    assert quick.body == b"quick" and time.monotonic() - started < 0.3
    waiting.join(10)
    assert [a.body for a in results] == [b"held"] * 10
    assert fetches(upstream, "/held") == 1


def test_the_fetch_goes_on_for_the_waiters_when_its_client_leaves(proxy, upstream, routes):
    routes.set("/abandoned", Answer(body=b"still stored", headers=MAX_AGE, delay=0.6))
    leader = Client(proxy.port)
    leader.send(b"GET /abandoned HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert upstream.wait_until(lambda up: fetches(up, "/abandoned") == 1)
    results: list = []
    waiting = threading.Thread(
        target=lambda: results.extend(at_once(proxy.port, "/abandoned", 5)))
    waiting.start()
    time.sleep(0.2)  # the five are waiting for the leader's fetch by now
    leader.close()
    waiting.join(10)
    assert [a.body for a in results] == [b"still stored"] * 5
    assert fetches(upstream, "/abandoned") == 1


def after_a_leader(port: int, upstream, target: str, leader_headers, count: int,
                   headers=(), method: str = "GET") -> tuple:
    """One request (of ``method``, with ``leader_headers``) reaches the upstream first;
    then ``count`` others are sent together while its fetch runs. Returns (leader's
    answer, others')."""
    led: list = []
    before = fetches(upstream, target)

    def lead() -> None:
        with Client(port, timeout=15) as client:
            led.append(client.request(method, target, headers=list(leader_headers)))
    thread = threading.Thread(target=lead)
    thread.start()
    assert upstream.wait_until(lambda up: fetches(up, target) == before + 1)
    clients = [Client(port, timeout=15) for _ in range(count)]
    barrier = threading.Barrier(count)
    answers: list = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        answers[index] = clients[index].request(method, target, headers=list(headers))
    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for each in threads:
        each.start()
    for each in [thread, *threads]:
        each.join(20)
    for client in clients:
        client.close()
    return led[0], answers


def test_a_request_with_authorization_leads_a_fetch_for_the_others(proxy, upstream, routes):
    target = "/leader/authorization"
    routes.set(target, Answer(body=b"shared", delay=1.5,
                              headers=[("Cache-Control", "public, max-age=600")]))
    first, others = after_a_leader(proxy.port, upstream, target,
                                   [("Authorization", "Basic YTpi")], 5)
    assert first.body == b"shared" and "stored" in first.header("Cache-Status")
    assert [a.body for a in others] == [b"shared"] * 5
    assert all("collapsed" in a.header("Cache-Status") for a in others)
    assert fetches(upstream, target) == 1


def test_a_revalidation_the_client_asked_for_serves_the_others_waiting(proxy, upstream,
                                                                       routes):
    target = "/leader/no-cache"
    routes.set(target, Answer(body=b"kept", headers=[
        ("Date", date(-700)), ("Cache-Control", "max-age=600"), ("ETag", '"k"')]),
        Answer(304, delay=1.5, headers=[("ETag", '"k"'), ("Date", date())]))
    with Client(proxy.port) as client:
        client.request("GET", target)
    first, others = after_a_leader(proxy.port, upstream, target,
                                   [("Cache-Control", "no-cache")], 5)
    assert "fwd=request; fwd-status=304" in first.header("Cache-Status")
    assert [a.body for a in others] == [b"kept"] * 5
    assert all("hit" in a.header("Cache-Status") for a in others)
    assert fetches(upstream, target) == 2


def test_requests_asking_for_a_younger_response_collapse(proxy, upstream, routes):
    target = "/younger"
    routes.set(target, Answer(body=b"old", headers=[("Date", date(-30)), *MAX_AGE]),
               Answer(body=b"new", delay=1.5, headers=MAX_AGE))
    with Client(proxy.port) as client:
        assert client.request("GET", target).body == b"old"
    younger = [("Cache-Control", "max-age=10")]
    first, others = after_a_leader(proxy.port, upstream, target, younger, 5, younger)
    assert first.body == b"new"
    assert [a.body for a in others] == [b"new"] * 5
    assert fetches(upstream, target) == 2


def test_heads_that_miss_collapse_into_one_get(proxy, upstream, routes):
    routes.set("/heads", Answer(body=b"0123456789", delay=1.5, headers=MAX_AGE))
    first, others = after_a_leader(proxy.port, upstream, "/heads", [], 5, method="HEAD")
    for answer in (first, *others):
        assert answer.status == 200 and answer.header("Content-Length") == "10"
        assert answer.body == b""
    assert [r.method for r in received_for(upstream, "/heads")] == ["GET"]


def test_waiters_of_a_fetch_that_fails_get_the_stale_response(proxy, upstream, routes):
    target = "/stale-for-all"
    routes.set(target, Answer(body=b"stale", headers=[
        ("Date", date(-700)), ("Cache-Control", "max-age=600, stale-if-error=3600")]),
        Answer(503, b"down", delay=1.5))
    with Client(proxy.port) as client:
        assert client.request("GET", target).body == b"stale"
    first, others = after_a_leader(proxy.port, upstream, target, [], 5)
    for answer in (first, *others):
        assert answer.status == 200 and answer.body == b"stale"
        assert "detail=stale-if-error" in answer.header("Cache-Status")
    assert all("collapsed" in a.header("Cache-Status") for a in others)
    assert fetches(upstream, target) == 2
