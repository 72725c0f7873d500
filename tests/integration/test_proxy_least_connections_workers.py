"""LeastConnections across workers: the proxy's statistics are counted locally and
published on a timer, but the balancer sees every worker's open connections at once."""

from __future__ import annotations

import threading
from collections import Counter

from proxy_support import entry, start_proxy
from rawhttp import Client
from support import wait_for
from upstreams import answer_name, slow


def test_a_connection_held_in_one_worker_steers_the_others(module_monkey, module_upstreams):
    busy, free = module_upstreams("busy"), module_upstreams("free")
    # A worker counts a connection off just after it wrote the response's last bytes, so
    # a busy machine may preempt it in between while the client already sends its next
    # request to the other worker: each of the two workers can hold one such stale
    # count on free. free has three times the weight, so those (at most 2/3 on free)
    # stay below the held connection on busy (1/1) and cannot draw a request to busy.
    proxy = start_proxy(module_monkey, entry("^/", busy, free, "weight=3",
                                             LoadBalancer="LeastConnections"), workers=2)
    release = threading.Event()
    held_slowly = slow(release)
    busy.behaviour = lambda exchange: (held_slowly(exchange) if exchange.request.target
                                       == "/held" else answer_name(exchange))
    answered = []

    def held_request() -> None:
        with Client(proxy.port, timeout=30) as client:
            answered.append(client.request("GET", "/held").header("X-Upstream"))

    # Idle servers take turns: the requests that go to free are answered at once, the
    # first one that goes to busy is held there.
    threads = []
    try:
        while busy.requests == 0:
            thread = threading.Thread(target=held_request)
            thread.start()
            threads.append(thread)
            assert wait_for(lambda: busy.requests == 1 or len(answered) == len(threads))
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
        for thread in threads:
            thread.join()
    assert answered.count("busy") == 1
