"""Passive health shared by instances of a fleet through a real redis-server: a server
one instance takes offline is skipped by every worker of every instance (and by an
instance started later) until its offline time ends; a server that answers one
instance early is back everywhere; a sole server is never taken offline by another
instance's mark."""

from __future__ import annotations

import time

import pytest

from fleet_support import answers, fleet_proxy, listening_workers, status
from proxy_support import entry
from support import wait_for
from upstreams import answer_name, hang_up

OFFLINE = 3


class Flaky:
    """Answers with its name, or hangs up without an answer while ``failing``."""

    def __init__(self) -> None:
        self.failing = False

    def __call__(self, exchange) -> bool:
        return (hang_up if self.failing else answer_name)(exchange)


@pytest.fixture(scope="module")
def setup(module_monkey, module_upstreams, redis):
    flaky = Flaky()
    x, y = module_upstreams("x", flaky), module_upstreams("y")
    both = [entry("^/fast/", x, y, Name="api", AttemptsCount=1, OfflineTimeOut=OFFLINE),
            entry("^/long/", x, y, Name="long", AttemptsCount=1, OfflineTimeOut=60)]
    url = redis.url()
    a = fleet_proxy(module_monkey, url, "a", *both, workers=2)
    b = fleet_proxy(module_monkey, url, "b", *both, workers=2)
    # x is the sole server of its entry here: never taken offline.
    sole = fleet_proxy(module_monkey, url, "sole", entry("^/fast/", x, Name="api"))
    # Below 100 % online, the panic threshold uses every server again.
    panicky = fleet_proxy(module_monkey, url, "panicky",
                          entry("^/long/", x, y, Name="long", PanicThreshold=100))
    assert wait_for(lambda: listening_workers(redis) == 6)
    return {"a": a, "b": b, "sole": sole, "panicky": panicky, "x": x, "y": y,
            "flaky": flaky, "redis": redis, "factory": module_monkey}


def offline_workers(proxy, name: str, upstream) -> int:
    """How many workers of ``proxy`` hold ``upstream`` offline in entry ``name``."""
    (found,) = [e for e in status(proxy.port)["entries"] if e["entry"] == name]
    (row,) = [row for row in found["upstreams"] if row["upstream"] == upstream.address]
    return row["offline_workers"]


def take_offline(setup, target: str) -> float:
    """Fail x for instance a until a takes it offline; when that happened (monotonic)."""
    a, x = setup["a"], setup["x"]
    marks = a.log().count(f"upstream {x.address} is offline for")
    setup["flaky"].failing = True
    try:
        assert wait_for(lambda: answers(a.port, target, 2) and a.log().count(
            f"upstream {x.address} is offline for") > marks)
    finally:
        setup["flaky"].failing = False
    return time.monotonic()


def test_a_server_failed_by_one_instance_is_skipped_by_the_others(setup):
    a, b, x, redis = setup["a"], setup["b"], setup["x"], setup["redis"]
    marked = take_offline(setup, "/fast/1")
    x.reset()
    # Every worker of b, and the other worker of a, skip it once the message is there.
    for proxy in (a, b):
        assert wait_for(lambda: offline_workers(proxy, "api", x) == 2)
    assert answers(b.port, "/fast/2", 20) == {"y": 20}
    assert answers(a.port, "/fast/3", 20) == {"y": 20}
    assert x.requests == 0
    left = redis.call("PTTL", f"monkey:fleet:offline:api/{x.address}")
    assert 0 < left <= OFFLINE * 1000
    assert redis.call("GET", f"monkey:fleet:offline:api/{x.address}") == b"a"
    # An instance starting now finds the mark in Redis.
    late = fleet_proxy(setup["factory"], redis.url(), "late",
                       entry("^/fast/", x, setup["y"], Name="api"))
    assert wait_for(lambda: "a took it offline" in late.log())
    assert answers(late.port, "/fast/4", 10) == {"y": 10}
    assert x.requests == 0
    assert "upstream %s is offline for" % x.address in b.log()
    # The mark ends with a's offline time, everywhere.
    assert wait_for(lambda: answers(b.port, "/fast/5", 4)["x"] > 0, timeout=OFFLINE + 5)
    assert time.monotonic() - marked >= OFFLINE - 0.5
    assert answers(late.port, "/fast/6", 4)["x"] > 0
    late.stop()


def test_a_sole_server_stays_in_use_whatever_another_instance_says(setup):
    sole, x = setup["sole"], setup["x"]
    take_offline(setup, "/fast/7")
    assert wait_for(lambda: "is offline for" in setup["b"].log())
    x.reset()
    assert answers(sole.port, "/fast/8", 5) == {"x": 5}
    assert "took it offline" not in sole.log()
    assert wait_for(lambda: answers(setup["b"].port, "/fast/9", 4)["x"] > 0,
                    timeout=OFFLINE + 5)


def test_a_server_that_answers_early_is_back_online_everywhere(setup):
    a, b, panicky, x, redis = (setup[name] for name in ("a", "b", "panicky", "x", "redis"))
    take_offline(setup, "/long/1")
    key = f"monkey:fleet:offline:long/{x.address}"
    # a logs the mark, then publishes it: the key is there a moment later.
    assert wait_for(lambda: redis.call("PTTL", key) > 50_000)
    assert wait_for(lambda: "a took it offline" in panicky.log())
    assert wait_for(lambda: offline_workers(b, "long", x) == 2)
    x.reset()
    assert answers(b.port, "/long/2", 10) == {"y": 10}
    assert x.requests == 0
    # panicky holds it offline too, which leaves half its servers online: below its
    # PanicThreshold, it uses x anyway; x answers, so its offline time ends early...
    assert answers(panicky.port, "/long/3", 4)["x"] > 0
    # ... for the whole fleet, long before the 60 s a took it offline for.
    assert wait_for(lambda: redis.call("EXISTS", key) == 0)
    assert wait_for(lambda: answers(b.port, "/long/4", 4)["x"] > 0)
    assert wait_for(lambda: answers(a.port, "/long/5", 4)["x"] > 0)
    assert f"upstream {x.address} is back online: it answered panicky" in a.log()


def test_messages_that_are_not_health_events_are_logged_and_change_nothing(setup):
    a, b, x, redis = setup["a"], setup["b"], setup["x"], setup["redis"]
    for junk in ("not json", '["a list"]', '{"kind": "offline"}',
                 '{"kind": "offline", "server": "api/%s", "from": "z/1", "ms": "soon"}'
                 % x.address):
        redis.call("PUBLISH", "monkey:fleet:health", junk)
    assert wait_for(lambda: b.log().count("that is not a health event") == 6)
    assert offline_workers(b, "api", x) == 0
    assert answers(a.port, "/fast/10", 4)["x"] > 0
    assert "Traceback" not in a.log() + b.log()
