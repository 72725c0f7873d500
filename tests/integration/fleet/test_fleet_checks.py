"""Active health checks shared by a fleet through a real redis-server: one instance
checks each server per interval (a lease in Redis), every instance counts every result
and so reaches the same verdict, an instance starting while a server is down holds it
down at once, and the lease passes to another instance when its holder stops."""

from __future__ import annotations

import threading
import time

import pytest

from fleet_support import answers, fleet_proxy, listening_workers, status
from proxy_support import entry
from support import wait_for
from upstreams import answer_name

INTERVAL = 0.5
CHECK = {"HealthCheck": "/health", "HealthCheckInterval": INTERVAL, "HealthCheckTimeout": 1,
         "HealthCheckRise": 2, "HealthCheckFall": 2}


class Checked:
    """Answers ``/health`` with ``status`` and notes when; anything else gets the name."""

    def __init__(self) -> None:
        self.status = 200
        self.asked: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, exchange) -> bool:
        if exchange.request.target != "/health":
            return answer_name(exchange)
        with self.lock:
            self.asked.append(time.monotonic())
        return exchange.respond(self.status, b"checked")

    def asked_between(self, start: float, end: float) -> int:
        with self.lock:
            return sum(start <= at < end for at in self.asked)


@pytest.fixture(scope="module")
def setup(module_monkey, module_upstreams, redis):
    health = {name: Checked() for name in ("p", "q")}
    ups = {name: module_upstreams(name, health[name]) for name in health}
    checked = entry("^/", ups["p"], ups["q"], Name="checked", **CHECK)
    a = fleet_proxy(module_monkey, redis.url(), "a", checked, workers=2)
    b = fleet_proxy(module_monkey, redis.url(), "b", checked, workers=2)
    assert wait_for(lambda: listening_workers(redis) == 4)
    return a, b, ups, health


def check_rows(port: int) -> dict:
    """{upstream name: its health_check figures} from the statistics' JSON."""
    (found,) = status(port)["entries"]
    return {row["upstream"]: row["health_check"] for row in found["upstreams"]}


def test_each_server_is_checked_once_per_interval_by_the_whole_fleet(setup, redis):
    a, b, ups, health = setup
    p = ups["p"].address
    assert wait_for(lambda: check_rows(a.port)[p]["checks"] >= 3, timeout=10)
    before = [check_rows(proxy.port)[p]["checks"] for proxy in (a, b)]
    start = time.monotonic()
    time.sleep(8 * INTERVAL)
    made = health["p"].asked_between(start, time.monotonic())
    after = [check_rows(proxy.port)[p]["checks"] for proxy in (a, b)]
    # Two instances checking on their own would make 16; the lease allows one check a
    # lease (an interval), and an instance tries once an interval.
    assert 4 <= made <= 9, made
    assert redis.call("GET", f"monkey:fleet:lease:checked/{p}") in (b"a", b"b")
    # Both count every check of the fleet, whichever instance made it.
    for counted in (now - then for now, then in zip(after, before)):
        assert abs(counted - made) <= 2, (before, after, made)


def test_a_server_failing_its_checks_is_down_in_every_instance(setup, redis,
                                                                  module_monkey):
    a, b, ups, health = setup
    q = ups["q"].address
    health["q"].status = 503
    try:
        for proxy in (a, b):
            assert wait_for(lambda: check_rows(proxy.port)[q]["state"] == "down",
                            timeout=10)
        # Every worker reads the verdicts every quarter second.
        assert wait_for(lambda: answers(a.port, "/x", 10) == {"p": 10})
        assert wait_for(lambda: answers(b.port, "/x", 10) == {"p": 10})
        # (The verdict is published after the checker records it: wait for the key.)
        assert wait_for(lambda: 0 < redis.call("PTTL", f"monkey:fleet:down:checked/{q}") <= (
            2 * INTERVAL + 1) * 1000)
        # An instance starting now takes the fleet's verdict at once, before any
        # check of its own could have failed twice.
        late = fleet_proxy(module_monkey, redis.url(), "late",
                           entry("^/", ups["p"], ups["q"], Name="checked", **CHECK))
        assert wait_for(lambda: "the fleet's health checks hold it down" in late.log())
        assert wait_for(lambda: answers(late.port, "/x", 6) == {"p": 6}, timeout=1)
        late.stop()
    finally:
        health["q"].status = 200
    for proxy in (a, b):
        assert wait_for(lambda: check_rows(proxy.port)[q]["state"] == "up", timeout=10)
    assert wait_for(lambda: redis.call("EXISTS", f"monkey:fleet:down:checked/{q}") == 0)
    assert wait_for(lambda: answers(b.port, "/x", 6)["q"] > 0)


def test_the_lease_passes_on_when_the_checking_instance_stops(start_monkey,
                                                              module_upstreams, redis):
    health = Checked()
    r = module_upstreams("r", health)
    checked = entry("^/", r, Name="takeover", **CHECK)
    instances = {name: fleet_proxy(start_monkey, redis.url(), name, checked)
                 for name in ("c", "d")}
    lease = f"monkey:fleet:lease:takeover/{r.address}"
    assert wait_for(lambda: redis.call("GET", lease) is not None, timeout=5)
    holder = redis.call("GET", lease).decode()
    (other,) = set(instances) - {holder}
    instances[holder].stop()
    stopped = time.monotonic()
    assert wait_for(lambda: redis.call("GET", lease) == other.encode(), timeout=5)
    # The lease it held ran out within an interval; the other instance takes it at its
    # next attempt, within another.
    assert time.monotonic() - stopped <= 2 * INTERVAL + 0.5
    time.sleep(4 * INTERVAL)
    assert health.asked_between(stopped + 2 * INTERVAL + 0.1, time.monotonic()) >= 2
    assert "takeover" in {row["entry"] for row in status(instances[other].port)["entries"]}
