"""Fleet figures through a real redis-server: three instances publish their totals, the
statistics page of any of them shows the fleet (JSON, HTML, Prometheus); an instance that
dies turns stale, then gone; one that stops gracefully is stopped at once; a reload is
not a stop."""

from __future__ import annotations

import os
import signal
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleet_support import answers, fleet_proxy, status
from proxy_support import STATUS_URL, entry
from rawhttp import Client
from redis_support import RedisServer
from support import wait_for


@pytest.fixture
def redis(tmp_path):
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()


def fleet_part(port: int) -> dict:
    return status(port)["fleet"]


def page(port: int, path: str) -> str:
    with Client(port) as client:
        response = client.request("GET", path)
    assert response.status == 200, response
    return response.body.decode()


def test_the_status_page_shows_the_whole_fleet_and_instances_that_stop(
        start_monkey, module_upstreams, redis):
    u = module_upstreams("u")
    instances = {name: fleet_proxy(start_monkey, redis.url(), name,
                                   entry("^/", u, Name="api"))
                 for name in ("a", "b", "c")}
    sent = {"a": 5, "b": 7, "c": 9}
    for name, count in sent.items():
        assert answers(instances[name].port, "/x", count) == {"u": count}
    a = instances["a"].port

    def settled() -> bool:
        fleet = fleet_part(a)
        return fleet["totals"]["up"] == 3 and fleet["totals"]["requests"] == 21

    assert wait_for(settled, timeout=5), fleet_part(a)
    fleet = fleet_part(a)
    assert fleet["name"] == "a" and fleet["error"] is None
    assert fleet["redis"] == f"redis://127.0.0.1:{redis.port}/0"
    assert {link["role"]: link["up"] for link in fleet["links"]} == {
        "commands": True, "subscriptions": True}
    rows = {row["name"]: row for row in fleet["instances"]}
    assert set(rows) == {"a", "b", "c"}
    for name, count in sent.items():
        assert rows[name]["state"] == "up" and rows[name]["age"] <= 3
        assert rows[name]["figures"]["requests"] == count
        assert rows[name]["figures"]["responses"] == count
        assert rows[name]["figures"]["workers"] == 1
    assert 0 < redis.call("PTTL", "monkey:fleet:figures:a") <= 3000
    assert redis.call("ZCARD", "monkey:fleet:members") == 3
    assert fleet["totals"] == {"requests": 21, "responses": 21, "failures": 0, "active": 0,
                               "up": 3, "stale": 0, "stopped": 0, "gone": 0}
    # Any instance shows the same fleet.
    assert fleet_part(instances["c"].port)["totals"]["requests"] == 21
    html = page(a, STATUS_URL)
    assert "<h2>Fleet</h2>" in html and "This instance is <code>a</code>" in html
    for name in sent:
        assert f"<tr><td class=\"text\">{name}</td><td class=\"text up\">up</td>" in html
    assert ("<th class=\"text\">3 up, 0 stale, 0 stopped, 0 gone</th><th></th><th>21</th>"
            in html)
    families = {family.name: family for family in
                text_string_to_metric_families(page(a, STATUS_URL + "/metrics"))}
    up = {sample.labels["state"]: sample.value
          for sample in families["monkey_proxy_fleet_instances"].samples}
    assert up == {"up": 3, "stale": 0, "stopped": 0, "gone": 0}
    assert {sample.labels["link"]: sample.value
            for sample in families["monkey_proxy_fleet_redis_up"].samples} == {
        "commands": 1, "subscriptions": 1}

    def state(name: str) -> str:
        return {row["name"]: row["state"] for row in fleet_part(a)["instances"]}[name]

    # An instance that dies (or is cut off from Redis) cannot say so: stale, then gone.
    os.killpg(instances["c"].pid, signal.SIGKILL)
    instances["c"].stop()
    stopped = time.monotonic()
    assert wait_for(lambda: state("c") == "stale", timeout=5)
    # Its figures lived 3 s after its last publication (at most 1 s before it stopped).
    assert time.monotonic() - stopped >= 2
    fleet = fleet_part(a)
    assert fleet["totals"]["requests"] == 12 and fleet["totals"]["up"] == 2
    assert wait_for(lambda: state("c") == "gone", timeout=12)
    assert time.monotonic() - stopped >= 9
    assert "<td class=\"text offline\">gone</td>" in page(a, STATUS_URL)

    # A reload is not a stop: its old workers leave without a word, the new ones publish.
    before = set(instances["a"].worker_pids())
    instances["a"].signal(signal.SIGHUP)
    assert wait_for(lambda: set(instances["a"].worker_pids()) and not set(
        instances["a"].worker_pids()) & before, timeout=15)
    # (The new worker reads the fleet once its link to Redis is up.)
    assert wait_for(lambda: fleet_part(a)["error"] is None, timeout=5)
    for _ in range(5):
        assert state("a") == "up"
        time.sleep(0.3)

    # An instance stopped gracefully says so: stopped at once, not stale, and kept so.
    instances["b"].stop()
    stopped = time.monotonic()
    assert wait_for(lambda: state("b") == "stopped", timeout=2)
    assert time.monotonic() - stopped < 2
    fleet = fleet_part(a)
    rows = {row["name"]: row for row in fleet["instances"]}
    assert rows["b"]["figures"]["requests"] == 7 and rows["b"]["figures"]["stopped"] is True
    assert {key: fleet["totals"][key] for key in ("up", "stale", "stopped", "gone")} == {
        "up": 1, "stale": 0, "stopped": 1, "gone": 1}
    # Only the instance up counts (a, whose counters started afresh at its reload).
    assert fleet["totals"]["requests"] == rows["a"]["figures"]["requests"] == 0
    assert "<td class=\"text muted\">stopped</td>" in page(a, STATUS_URL)
    time.sleep(4)
    assert state("b") == "stopped"


def test_redis_down_at_start_the_instance_serves_and_shows_the_outage(
        start_monkey, module_upstreams, redis):
    u = module_upstreams("u")
    redis.stop()                                    # nobody listens on its port now
    proxy = fleet_proxy(start_monkey, redis.url(), "alone", entry("^/", u, Name="api"),
                        workers=2)
    assert answers(proxy.port, "/x", 10) == {"u": 10}
    fleet = fleet_part(proxy.port)
    assert fleet["error"].startswith("the fleet's figures could not be read: Redis at ")
    assert fleet["instances"] == [] and fleet["totals"]["up"] == 0
    for link in fleet["links"]:
        assert link["up"] is False and link["outages"] == 1
        assert "Connection refused" in link["last_error"]
    html = page(proxy.port, STATUS_URL)
    assert "<td class=\"text offline\">down since" in html
    assert "the figures above are this instance's alone" in html
    assert proxy.log().count("is down (") == 4      # one per link and worker
    # Redis comes: the links come up, and the instance joins the fleet.
    redis.start()
    assert wait_for(lambda: fleet_part(proxy.port)["totals"]["up"] == 1, timeout=10)
    assert all(link["up"] for link in fleet_part(proxy.port)["links"])
