"""Every built-in balancer through the real proxy: its distribution, its failover order,
weights and backup servers; and the example third-party balancer, chosen by name.

The balancers' names are spelled differently in each entry: they match case-insensitively
with ``-`` and ``_`` ignored. ``AttemptsCount 1000`` keeps a dead server online, so every
request that the balancer starts at it shows where the balancer goes next.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import zlib
from collections import Counter

import pytest

from proxy_support import ClientFrom, assert_settled, entry, start_proxy
from rawhttp import Client
from support import free_port
from upstreams import slow

NAMES = {
    "naive": "naive",
    "first-alive": "FIRST_ALIVE",
    "rr": "round-robin",
    "lrr": "Locking_Round_Robin",
    "lc": "leastconnections",
    "sh": "Source-Hash",
    "r2": "random_two_choices",
}
KEEP_DEAD_ONLINE = {"AttemptsCount": 1000}


@pytest.fixture(scope="module")
def farm(module_monkey, module_upstreams):
    """Upstreams a, b, c behind one proxy with an entry per balancer and per case."""
    a, b, c = (module_upstreams(name) for name in "abc")
    dead = f"127.0.0.1:{free_port()}"
    primary, spare, backup = (module_upstreams(name) for name in ("primary", "spare", "backup"))
    entries = []
    for prefix, name in NAMES.items():
        entries.append(entry(f"^/{prefix}/", a, b, c, LoadBalancer=name))
        entries.append(entry(f"^/dead-{prefix}/", dead, a, b, LoadBalancer=name,
                             **KEEP_DEAD_ONLINE))
    entries += [
        entry("^/weighted/", a, "weight=3", b, c, "weight=2", LoadBalancer="RoundRobin"),
        entry("^/locking-weighted/", a, "weight=3", b, c, "weight=2",
              LoadBalancer="LockingRoundRobin"),
        entry("^/backup/", dead, primary, backup, "backup", LoadBalancer="RoundRobin",
              AttemptsCount=1, OfflineTimeOut=60),
        entry("^/header/", a, b, c, LoadBalancer="header-hash"),
        entry("^/least-slow/", spare, a, b, LoadBalancer="LeastConnections"),
    ]
    proxy = start_proxy(module_monkey, *entries)
    return proxy, {up.name: up for up in (a, b, c, primary, spare, backup)}


@pytest.fixture
def proxy(farm):
    proxy, upstreams = farm
    for upstream in upstreams.values():
        upstream.reset()
    yield proxy
    assert_settled(proxy.port)


@pytest.fixture
def ups(farm):
    return farm[1]


def served(client: Client, target: str, headers=None) -> str:
    response = client.request("GET", target, headers=headers)
    assert response.status == 200, response
    return response.header("X-Upstream")


def sequence(port: int, target: str, count: int) -> list[str]:
    with Client(port) as client:
        return [served(client, target) for _ in range(count)]


def crc_pick(value: str, names: str) -> str:
    return names[zlib.crc32(value.encode()) % len(names)]


# -- distribution ---------------------------------------------------------------------
def test_naive_starts_at_the_client_port_and_keeps_it_per_connection(proxy):
    for _ in range(6):
        with Client(proxy.port) as client:
            port = client.sock.getsockname()[1]
            picks = {served(client, "/naive/x") for _ in range(3)}
        assert picks == {"abc"[port % 3]}


def test_first_alive_sends_everything_to_the_first_server(proxy, ups):
    assert Counter(sequence(proxy.port, "/first-alive/x", 10)) == {"a": 10}


def test_round_robin_rotates_in_list_order(proxy):
    assert "".join(sequence(proxy.port, "/rr/x", 9)) == "abcabcabc"


def test_locking_round_robin_rotates_in_list_order(proxy):
    assert "".join(sequence(proxy.port, "/lrr/x", 9)) == "abcabcabc"


def test_least_connections_rotates_among_idle_servers(proxy):
    # One request at a time: every server has no active connection when it is chosen,
    # and the tie goes round them (nginx's least_conn), not always to the first.
    assert "".join(sequence(proxy.port, "/lc/x", 9)) == "abcabcabc"


def test_source_hash_keeps_each_client_address_on_one_server(proxy):
    for last in range(1, 9):
        source = f"127.0.0.{last}"
        picks = set()
        for _ in range(2):
            with ClientFrom(proxy.port, source) as client:
                picks.add(served(client, "/sh/x"))
        assert picks == {crc_pick(source, "abc")}, source


def test_random_two_choices_spreads_evenly(proxy):
    counts = Counter(sequence(proxy.port, "/r2/x", 300))
    # 300 draws of 1 in 3: 100 each, standard deviation 8.2; the bounds are 6 of those.
    assert set(counts) == set("abc") and all(50 <= n <= 150 for n in counts.values()), counts


def test_weights_give_smooth_weighted_rotation(proxy):
    assert "".join(sequence(proxy.port, "/weighted/x", 12)) == "acabca" * 2
    assert "".join(sequence(proxy.port, "/locking-weighted/x", 12)) == "acabca" * 2


# -- failover ---------------------------------------------------------------------------
@pytest.mark.parametrize("prefix, expected", [
    ("first-alive", {"a": 9}),
    # The rotation reaches the dead server every third turn and goes on to the next one.
    ("rr", {"a": 6, "b": 3}),
    ("lrr", {"a": 6, "b": 3}),
    # So do the ties of idle servers.
    ("lc", {"a": 6, "b": 3}),
])
def test_a_dead_server_is_passed_over_in_the_balancers_order(proxy, ups, prefix, expected):
    assert Counter(sequence(proxy.port, f"/dead-{prefix}/x", 9)) == expected


def test_naive_passes_a_dead_server_over_in_list_order(proxy):
    for _ in range(6):
        with Client(proxy.port) as client:
            port = client.sock.getsockname()[1]
            pick = served(client, "/dead-naive/x")
        assert pick == ("a", "a", "b")[port % 3]


def test_source_hash_passes_a_dead_server_over_in_list_order(proxy):
    for last in range(1, 9):
        source = f"127.0.0.{last}"
        with ClientFrom(proxy.port, source) as client:
            pick = served(client, "/dead-sh/x")
        assert pick == {"dead": "a", "a": "a", "b": "b"}[crc_pick(source, ("dead", "a", "b"))]


def test_random_two_choices_passes_a_dead_server_over(proxy):
    counts = Counter(sequence(proxy.port, "/dead-r2/x", 60))
    assert set(counts) == {"a", "b"} and sum(counts.values()) == 60


def test_backup_serves_only_when_every_primary_is_down(proxy, ups):
    assert Counter(sequence(proxy.port, "/backup/x", 6)) == {"primary": 6}
    assert ups["backup"].requests == 0
    ups["primary"].stop()
    assert Counter(sequence(proxy.port, "/backup/x", 4)) == {"backup": 4}


def test_least_connections_sends_nothing_to_a_busy_server_while_others_are_free(proxy, ups):
    release = threading.Event()
    ups["spare"].behaviour = slow(release)
    held = {}

    def held_request() -> None:
        with Client(proxy.port) as client:
            held["by"] = served(client, "/least-slow/x")

    thread = threading.Thread(target=held_request)
    thread.start()
    try:
        # All idle: the entry's first tie goes to the first in list order, the slow server.
        assert ups["spare"].wait_until(lambda up: up.requests == 1)
        # While it works on that one, the others (idle between requests) share the rest.
        assert Counter(sequence(proxy.port, "/least-slow/x", 20)) == {"a": 10, "b": 10}
    finally:
        release.set()
        thread.join()
    assert held["by"] == "spare"
    # Idle again, and behind the others in the rotation of ties: first in line again.
    assert sequence(proxy.port, "/least-slow/x", 1) == ["spare"]


# -- a third-party balancer --------------------------------------------------------------
def test_the_example_balancer_is_installed():
    listing = subprocess.run([sys.executable, "-m", "monkey_py", "plugins"],
                             capture_output=True, text=True, check=True).stdout
    assert "HeaderHash" in listing and "monkey-example-balancer" in listing


def test_the_example_balancer_routes_by_header(proxy):
    with Client(proxy.port) as client:
        for user in ("alice", "bob", "carol", "dave", "erin", "frank"):
            for _ in range(2):
                assert served(client, "/header/x", [("X-User", user)]) == crc_pick(user, "abc")
        # Without the header: list order, so the first server.
        assert served(client, "/header/x") == "a"


# -- an even split across two workers ---------------------------------------------------
@pytest.fixture(scope="module")
def spread(module_monkey, module_upstreams):
    """Three upstreams behind a proxy with two workers."""
    trio = [module_upstreams(f"spread-{n}") for n in range(3)]
    proxy = start_proxy(module_monkey, entry("^/rr/", *trio, LoadBalancer="RoundRobin"),
                        entry("^/lrr/", *trio, LoadBalancer="LockingRoundRobin"), workers=2)
    return proxy, trio


def split(spread, target: str, total: int = 3000, clients: int = 6) -> list[int]:
    """Send ``total`` requests from ``clients`` keep-alive connections at once."""
    proxy, trio = spread
    for upstream in trio:
        upstream.reset()

    def client_thread() -> None:
        with Client(proxy.port) as client:
            for _ in range(total // clients):
                assert client.request("GET", target).status == 200

    threads = [threading.Thread(target=client_thread) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [upstream.requests for upstream in trio]


def test_round_robin_splits_evenly_across_workers(spread):
    counts = split(spread, "/rr/x")
    # Each worker's rotation is exact: each server is at most one off per worker.
    assert sum(counts) == 3000 and all(abs(n - 1000) <= 2 for n in counts), counts


def test_locking_round_robin_splits_exactly_across_workers(spread):
    assert split(spread, "/lrr/x") == [1000, 1000, 1000]
