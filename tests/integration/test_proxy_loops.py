"""Loop detection: the server as one of its own upstreams, and two servers listing each
other. Forwarded requests carry this instance's Via token; one that comes back is answered
508, and an upstream that is this server itself (and would proxy again) is skipped."""

from __future__ import annotations

import time

import pytest

from proxy_support import entry, get, proxy_stats, start_proxy
from support import free_port
from upstreams import Upstreams


@pytest.fixture
def upstreams():
    with Upstreams() as start:
        yield start


def self_address() -> tuple[int, str]:
    port = free_port()
    return port, f"127.0.0.1:{port}"


def test_itself_first_is_skipped_for_the_next_upstream(module_monkey, upstreams):
    other = upstreams("other")
    _, itself = self_address()
    proxy = start_proxy(module_monkey, entry("^/", itself, other, LoadBalancer="First-Alive"),
                        server=[f"Listen {itself}"])
    for _ in range(3):
        response = get(proxy.port, "/page")
        assert (response.status, response.body) == (200, b"other")
    assert other.requests == 3
    assert {row["upstream"]: row["requests"] for row in proxy_stats(proxy.port)} == {
        itself: 0, other.address: 3}


def test_only_itself_gets_a_fast_508_and_the_server_stays_responsive(module_monkey):
    _, itself = self_address()
    proxy = start_proxy(module_monkey, entry("^/api/", itself), server=[f"Listen {itself}"])
    started = time.monotonic()
    for _ in range(20):
        response = get(proxy.port, "/api/x")
        assert response.status == 508
        assert b"Loop Detected" in response.body
    assert time.monotonic() - started < 5
    assert get(proxy.port, "/other").status == 404  # not proxied: the static files answer
    assert sum(row["requests"] for row in proxy_stats(proxy.port)) == 0


def test_two_servers_listing_each_other_stop_after_one_round_trip(module_monkey):
    _, address_a = self_address()
    _, address_b = self_address()
    a = start_proxy(module_monkey, entry("^/", address_b), server=[f"Listen {address_a}"])
    b = start_proxy(module_monkey, entry("^/", address_a), server=[f"Listen {address_b}"])
    response = get(a.port, "/ping")
    assert response.status == 508
    # A forwarded once to B, B once back to A, which recognised its own mark.
    assert [row["requests"] for row in proxy_stats(a.port)] == [1]
    assert [row["requests"] for row in proxy_stats(b.port)] == [1]
    assert "monkey_py-" in response.header("via")
