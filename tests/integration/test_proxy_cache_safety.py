"""The cache under faults: a request that ends in an error releases its collapse lock,
and a request that comes back through this server (a loop) neither waits for nor leads
a fetch. Through the real proxy and real upstreams (docs/proxy_cache.md, Collapsing)."""

from __future__ import annotations

import os
import textwrap
import time

import pytest

from cache_support import Answer, Routes, fetches, store_keys, store_ready
from proxy_support import entry, start_proxy
from rawhttp import Client
from support import free_port
from upstreams import Upstreams

MAX_AGE = [("Cache-Control", "max-age=600")]
# Long enough that a request left waiting for a leaked lock fails the test outright.
LOCK_TIMEOUT = "30"

FAULTY = """\
    from monkey_py_plugins.balancers import Balancer


    class Faulty(Balancer):
        \"\"\"List order, except that a request with X-Explode makes candidates() raise.\"\"\"

        def candidates(self, request):
            if request.header(b"x-explode") is not None:
                raise RuntimeError("the balancer exploded")
            return self.servers
    """


@pytest.fixture
def faulty_balancer(tmp_path, monkeypatch):
    """A third-party balancer ``Faulty`` installed for the servers this test starts."""
    root = tmp_path / "faulty"
    info = root / "monkey_test_faulty-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: monkey-test-faulty\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[monkey_py.balancers]\nFaulty = monkey_test_faulty:Faulty\n")
    (root / "monkey_test_faulty.py").write_text(textwrap.dedent(FAULTY))
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(root) + (os.pathsep + path if path else ""))
    return "Faulty"


@pytest.fixture(params=["memory", "redis"])
def store(request, tmp_path_factory):
    """The test's cache store: its keys, and a wait until a proxy started with them has
    its links to Redis (the fleet's lock must be released too)."""
    return store_keys(request, tmp_path_factory), lambda: store_ready(request)


@pytest.fixture
def upstream():
    with Upstreams() as start:
        yield start("origin", Routes())


def fetch(port: int, target: str, headers=()):
    with Client(port, timeout=10) as client:
        return client.request("GET", target, headers=list(headers))


def test_a_balancer_that_raises_releases_the_collapse_lock(start_monkey, upstream,
                                                           faulty_balancer, store):
    keys, ready = store
    proxy = start_proxy(start_monkey, entry("^/", upstream, Cache="On",
                                            LoadBalancer=faulty_balancer,
                                            CacheLockTimeout=LOCK_TIMEOUT), **keys)
    ready()
    upstream.behaviour.set("/boom", Answer(body=b"fine", headers=MAX_AGE))
    started = time.monotonic()
    for _ in range(3):
        failed = fetch(proxy.port, "/boom", [("X-Explode", "1")])
        assert failed.status == 500
        assert failed.header("Cache-Status") == "monkey_py; fwd=miss"
    # The next request leads its own fetch at once: nothing holds the lock.
    answer = fetch(proxy.port, "/boom")
    assert answer.status == 200 and answer.body == b"fine"
    assert time.monotonic() - started < 8
    assert fetches(upstream, "/boom") == 1
    assert "the balancer exploded" in proxy.log()


def test_two_caching_instances_listing_each_other_get_their_508_at_once(start_monkey):
    address_a = f"127.0.0.1:{free_port()}"
    address_b = f"127.0.0.1:{free_port()}"
    a = start_proxy(start_monkey, entry("^/", address_b, Cache="On",
                                        CacheLockTimeout=LOCK_TIMEOUT),
                    server=[f"Listen {address_a}"])
    start_proxy(start_monkey, entry("^/", address_a, Cache="On",
                                    CacheLockTimeout=LOCK_TIMEOUT),
                server=[f"Listen {address_b}"])
    started = time.monotonic()
    for _ in range(3):
        response = fetch(a.port, "/ping")
        assert response.status == 508
    assert time.monotonic() - started < 8


def test_a_request_back_from_a_loop_is_still_served_a_fresh_hit(start_monkey, upstream,
                                                                store):
    keys, ready = store
    proxy = start_proxy(start_monkey, entry("^/", upstream, Cache="On",
                                            CacheLockTimeout=LOCK_TIMEOUT), **keys)
    ready()
    upstream.behaviour.set("/looped", Answer(body=b"stored", headers=MAX_AGE))
    via = fetch(proxy.port, "/looped").header("Via")
    hit = fetch(proxy.port, "/looped", [("Via", via)])
    assert hit.status == 200 and hit.body == b"stored"
    assert fetches(upstream, "/looped") == 1
