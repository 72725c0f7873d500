"""LeastConnections across workers: the proxy's statistics are counted locally and
published on a timer, but the balancer sees every worker's open connections at once."""

from __future__ import annotations

import threading
from collections import Counter

from proxy_support import entry, start_proxy
from rawhttp import Client
from upstreams import slow


def test_a_connection_held_in_one_worker_steers_the_others(module_monkey, module_upstreams):
    busy, free = module_upstreams("busy"), module_upstreams("free")
    proxy = start_proxy(module_monkey, entry("^/", busy, free, LoadBalancer="LeastConnections"),
                        workers=2)
    release = threading.Event()
    busy.behaviour = slow(release)
    held = {}

    def held_request() -> None:
        with Client(proxy.port) as client:
            held["status"] = client.request("GET", "/held").header("X-Upstream")

    thread = threading.Thread(target=held_request)
    thread.start()
    try:
        assert busy.wait_until(lambda up: up.requests == 1)
        # Each request on a connection of its own: the kernel spreads them over both
        # workers, and every one of them must see the busy server's open connection.
        answers = Counter()
        for _ in range(24):
            with Client(proxy.port) as client:
                response = client.request("GET", "/x")
                assert response.status == 200
                answers[response.header("X-Upstream")] += 1
        assert answers == {"free": 24}
    finally:
        release.set()
        thread.join()
    assert held["status"] == "busy"
