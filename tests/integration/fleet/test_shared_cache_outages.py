"""The shared cache when Redis fails: killed and restarted under load, or full
(maxmemory with noeviction). Clients never see it: every request gets its one 200,
and the workers hold no more descriptors afterwards (docs/fleet.md, "The shared cache")."""

from __future__ import annotations

import os
import threading
import time

import pytest

from cache_support import Answer, Routes, await_redis_links, fetches
from proxy_support import entry, start_proxy
from rawhttp import Client
from support import open_fds
from upstreams import Upstreams

MAX_AGE = [("Cache-Control", "max-age=600")]
TARGETS = [f"/load/{n}" for n in range(40)]


@pytest.fixture
def upstream():
    with Upstreams() as start:
        routes = Routes()
        for target in TARGETS:
            routes.set(target, Answer(body=target.encode() * 20, headers=MAX_AGE))
        yield start("origin", routes)


def fleet(factory, redis, upstream, workers: int):
    """Two instances sharing ``redis``: the first with a memory tier, the second without."""
    proxies = [start_proxy(factory, entry("^/", upstream, Cache="On"), workers=workers,
                           CacheStore=redis.url(), **extra)
               for extra in ({"CacheMemoryTier": "4"}, {})]
    await_redis_links(redis, 0, workers=2 * workers)
    return proxies


class Load:
    """Clients asking the instances for ``TARGETS`` in turn, on keep-alive connections,
    until stopped; every answer and every error is kept."""

    def __init__(self, proxies, clients: int = 4) -> None:
        self.proxies = proxies
        self.statuses: list[int] = []
        self.errors: list[Exception] = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(clients)]
        for thread in self.threads:
            thread.start()

    def _run(self, number: int) -> None:
        proxy = self.proxies[number % len(self.proxies)]
        index = number
        client = None
        while not self.stopping.is_set():
            target = TARGETS[index % len(TARGETS)]
            index += 3
            client = client or Client(proxy.port, timeout=10)
            try:
                response = client.request("GET", target)
            except Exception as exc:  # noqa: BLE001 - every failure counts
                self.errors.append(exc)
                break
            self.statuses.append(response.status)
            if response.body != target.encode() * 20:
                self.errors.append(AssertionError(f"{target}: {response.body[:40]!r}"))
            if (response.header("Connection") or "").lower() == "close":
                client.close()  # MaxKeepAliveRequest reached: a new connection
                client = None
        if client is not None:
            client.close()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(20)


def worker_fds(proxies, upstream) -> dict[int, int]:
    """Each worker's descriptors, less its connections with clients and with the
    upstream (their number follows the load): the listener, the loop's own, and the
    links to Redis."""
    ports = {proxy.port for proxy in proxies} | {upstream.port}
    return {pid: open_fds(pid) - len(tcp_inodes(ports) & socket_inodes(pid))
            for proxy in proxies for pid in proxy.worker_pids()}


def tcp_inodes(ports: set[int]) -> set[str]:
    """The inodes of the TCP connections on one of ``ports`` (either end), whatever
    their state."""
    inodes = set()
    with open("/proc/net/tcp") as lines:
        next(lines)
        for line in lines:
            fields = line.split()
            own, peer = int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16)
            if own in ports or peer in ports:
                inodes.add(fields[9])
    return inodes


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def test_killing_and_restarting_redis_under_load_fails_no_request(start_monkey, own_redis,
                                                                  upstream):
    proxies = fleet(start_monkey, own_redis, upstream, workers=2)
    warm = Load(proxies)
    time.sleep(1.0)
    warm.stop()
    before = worker_fds(proxies, upstream)
    load = Load(proxies)
    time.sleep(0.5)
    own_redis.kill()
    time.sleep(1.0)
    own_redis.start()
    time.sleep(0.5)
    await_redis_links(own_redis, 0, workers=4)
    served = len(load.statuses)
    time.sleep(0.5)
    load.stop()
    assert load.errors == []
    assert set(load.statuses) == {200} and len(load.statuses) > served > 100
    assert worker_fds(proxies, upstream) == before
    for proxy in proxies:
        assert proxy.log().count("is down") == 2 * 2  # one per link and worker


def test_a_full_redis_leaves_every_request_a_200(start_monkey, own_redis, upstream):
    own_redis.call("CONFIG", "SET", "maxmemory-policy", "noeviction")
    own_redis.call("CONFIG", "SET", "maxmemory", "1mb")
    own_redis.call("DEBUG", "POPULATE", "20000", "filler", "64")
    proxies = fleet(start_monkey, own_redis, upstream, workers=1)
    for _ in range(2):
        for number, target in enumerate(TARGETS):
            with Client(proxies[number % 2].port) as client:
                response = client.request("GET", target)
            assert response.status == 200 and response.body == target.encode() * 20
    assert own_redis.call("KEYS", "monkey:cache:*") == []
    # Nothing reached Redis: the second round went upstream too, except what the first
    # instance's memory tier kept.
    assert sum(fetches(upstream, target) for target in TARGETS) == 2 * len(TARGETS) - 20
    for proxy in proxies:
        assert proxy.log().count("OOM command not allowed") <= 1  # once a minute
    assert sum(proxy.log().count("OOM command not allowed") for proxy in proxies) >= 1


def test_a_slow_redis_costs_a_lookup_the_command_timeout_and_no_more(start_monkey, own_redis,
                                                                     upstream):
    proxy, _ = fleet(start_monkey, own_redis, upstream, workers=1)
    target = TARGETS[0]
    get_status(proxy, target)
    assert "hit" in get_status(proxy, target)  # from the memory tier
    other = TARGETS[1]
    sleeper = threading.Thread(target=own_redis.call, args=("DEBUG", "SLEEP", "1.5"))
    sleeper.start()
    time.sleep(0.1)
    started = time.monotonic()
    assert "fwd=miss" in get_status(proxy, other)  # Redis does not answer: a miss
    assert time.monotonic() - started < 0.25 + 0.5
    assert "hit" in get_status(proxy, target)  # the memory tier needs no Redis
    sleeper.join()


def test_a_purge_while_redis_is_down_says_the_shared_copies_stay(start_monkey, own_redis,
                                                                 upstream):
    proxy, other = fleet(start_monkey, own_redis, upstream, workers=1)
    get_status(proxy, TARGETS[2])
    own_redis.kill()
    with Client(other.port) as client:
        purged = client.request("PURGE", TARGETS[2])
        assert purged.status == 202 and purged.header("Cache-Status") == (
            "monkey_py; detail=purge-pending")
        assert b"repeat the PURGE" in purged.body
        answer = client.request("GET", TARGETS[2])
    assert answer.status == 200 and "fwd=miss" in answer.header("Cache-Status")


def get_status(proxy, target: str) -> str:
    """GET ``target`` (which must answer its 200): its Cache-Status."""
    with Client(proxy.port) as client:
        response = client.request("GET", target)
    assert response.status == 200 and response.body == target.encode() * 20
    return response.header("Cache-Status")
