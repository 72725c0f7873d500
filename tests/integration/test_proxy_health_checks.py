"""Active health checks against real upstreams that fail, hang, refuse and come back:
a server whose check fails is held offline in every worker, one check per interval
whatever the number of workers, a server back gets a slow start, and the verdicts
survive a reload."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter

import pytest

from proxy_support import STATUS_URL, entry, start_proxy
from rawhttp import Client
from support import free_port, wait_for
from upstreams import Exchange, answer_name

INTERVAL = 0.2
CHECK = {"HealthCheck": "/health", "HealthCheckInterval": INTERVAL, "HealthCheckTimeout": 1,
         "HealthCheckRise": 2, "HealthCheckFall": 2}


class Checked:
    """What an upstream's ``/health`` answers (``status``; None: hang), and when it was
    asked; anything else gets the upstream's name."""

    def __init__(self) -> None:
        self.status: int | None = 200
        self.asked: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, exchange: Exchange) -> bool:
        if exchange.request.target != "/health":
            return answer_name(exchange)
        with self.lock:
            self.asked.append(time.monotonic())
        status = self.status
        if status is None:
            exchange.upstream.stopping.wait()
            return False
        return exchange.respond(status, b"checked")

    def asked_between(self, start: float, end: float) -> int:
        with self.lock:
            return sum(start <= at < end for at in self.asked)


@pytest.fixture(scope="module")
def setup(module_monkey, module_upstreams):
    health = {name: Checked() for name in ("a", "b", "c", "d")}
    ups = {name: module_upstreams(name, health[name]) for name in health}
    proxy = start_proxy(
        module_monkey,
        entry("^/checked/", ups["a"], ups["b"], **CHECK),
        entry("^/gone/", ups["a"], f"127.0.0.1:{free_port()}", Name="gone", **CHECK),
        workers=2)
    warm = start_proxy(module_monkey, entry("^/warm/", ups["c"], ups["d"], SlowStart=30,
                                            **{**CHECK, "HealthCheckRise": 1}))
    return proxy, ups, health, warm


@pytest.fixture
def health(setup):
    yield setup[2]
    for checked in setup[2].values():
        checked.status = 200


def upstream_rows(port: int, match: str) -> dict:
    """{upstream address: its JSON figures} in the entry whose Match is ``match``."""
    with Client(port) as client:
        document = json.loads(client.request("GET", STATUS_URL + ".json").body)
    (found,) = [e for e in document["entries"] if e["match"] == [match]]
    return {row["upstream"]: row for row in found["upstreams"]}


def check_state(port: int, match: str, upstream) -> str:
    return upstream_rows(port, match)[upstream.address]["health_check"]["state"]


def answers(port: int, target: str, count: int) -> Counter:
    found = Counter()
    for _ in range(count):
        with Client(port) as client:          # a new connection: either worker
            response = client.request("GET", target)
        assert response.status == 200, response
        found[response.header("X-Upstream")] += 1
    return found


def test_a_server_failing_its_check_is_held_offline_in_every_worker(proxy, ups, health):
    assert wait_for(lambda: check_state(proxy.port, "^/checked/", ups["b"]) == "up")
    health["b"].status = 503
    assert wait_for(lambda: check_state(proxy.port, "^/checked/", ups["b"]) == "down",
                    timeout=15)
    # b still answers requests; its check holds it offline, in both workers (each reads
    # the verdicts every quarter second).
    assert wait_for(lambda: answers(proxy.port, "/checked/x", 20) == {"a": 20})
    row = upstream_rows(proxy.port, "^/checked/")[ups["b"].address]
    assert row["health_check"]["last_result"] == "unexpected status 503"
    assert row["health_check"]["failures"] >= 2 and row["effective_weight"] == 0
    assert "upstream %s failed 2 health check(s) of /health in a row: down" % (
        ups["b"].address) in proxy.log()
    health["b"].status = 200
    assert wait_for(lambda: check_state(proxy.port, "^/checked/", ups["b"]) == "up",
                    timeout=15)
    assert wait_for(lambda: answers(proxy.port, "/checked/x", 10)["b"] > 0)


def test_a_check_that_hangs_times_out_and_a_refused_one_fails(proxy, ups, health):
    health["a"].status = None
    assert wait_for(lambda: check_state(proxy.port, "^/checked/", ups["a"]) == "down",
                    timeout=15)
    row = upstream_rows(proxy.port, "^/checked/")[ups["a"].address]
    assert row["health_check"]["last_result"] == "timed out"
    rows = upstream_rows(proxy.port, "^/gone/")
    (gone,) = [row for address, row in rows.items() if address != ups["a"].address]
    assert gone["health_check"]["state"] == "down"
    assert gone["health_check"]["last_result"] == "connect: Connection refused"


def test_each_server_is_checked_once_per_interval_whatever_the_workers(proxy, health):
    start = time.monotonic()
    assert wait_for(lambda: time.monotonic() > start + 10 * INTERVAL
                    and health["b"].asked_between(start, start + 10 * INTERVAL) >= 3)
    # Worker 0 checks b about 10 times in 10 intervals; two workers checking would make
    # about 20. Timers only ever run late, so 12 is a safe bound.
    assert health["b"].asked_between(start, start + 10 * INTERVAL) <= 12


def test_a_server_back_from_a_failed_check_starts_slowly(setup, health):
    warm, ups = setup[3], setup[1]
    assert wait_for(lambda: check_state(warm.port, "^/warm/", ups["d"]) == "up")
    health["d"].status = 500
    assert wait_for(lambda: check_state(warm.port, "^/warm/", ups["d"]) == "down",
                    timeout=15)
    health["d"].status = 200
    assert wait_for(lambda: check_state(warm.port, "^/warm/", ups["d"]) == "up",
                    timeout=15)
    # The worker reads the verdicts every quarter second (d may be back before it saw
    # d down). Once it has, d is used again with SlowStart 30: a tenth of its weight,
    # a step more every 3 s.
    assert wait_for(lambda: 0 < upstream_rows(warm.port, "^/warm/")[ups["d"].address][
        "effective_weight"] < 1)
    found = answers(warm.port, "/warm/x", 40)
    # These requests take well under 12 s: d has at most 4/14 of them.
    assert 0 < found["d"] <= sum(found.values()) * 4 / 14 + 1, found
    row = upstream_rows(warm.port, "^/warm/")[ups["d"].address]
    assert 0 < row["effective_weight"] < 1


def test_the_verdicts_survive_a_reload(start_monkey, module_upstreams):
    checked = Checked()
    down, up = module_upstreams("reload-down", checked), module_upstreams("reload-up")
    # A check every 5 s: without the old verdict, a reload would send half the
    # requests to the server that is down until its next checks.
    slow_check = {**CHECK, "HealthCheckInterval": 5, "HealthCheckFall": 1}
    checked.status = 503
    proxy = start_proxy(start_monkey, entry("^/", down, up, **slow_check))
    assert wait_for(lambda: check_state(proxy.port, "^/", down) == "down", timeout=15)
    before = set(proxy.worker_pids())
    proxy.signal(signal.SIGHUP)
    assert wait_for(lambda: set(proxy.worker_pids()) and not set(proxy.worker_pids())
                    & before, timeout=15)
    assert answers(proxy.port, "/x", 10) == {"reload-up": 10}
    assert check_state(proxy.port, "^/", down) == "down"
