"""Passive health that never takes every server offline: the sole server of an entry
stays online, a request that fails on every server is not charged to them, panic mode
below the healthy share, the server back soonest tried rather than 503, and an offline
server's turns shared evenly by the round robins."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from proxy_support import STATUS_URL, balancer_package, entry, get, proxy_stats, start_proxy
from rawhttp import Client
from support import free_port, wait_for
from upstreams import Exchange, Upstreams, answer_name


def bad_closes(exchange: Exchange) -> bool:
    """``/bad`` gets the connection closed without an answer; anything else its name."""
    if "/bad" in exchange.request.target:
        return False
    return answer_name(exchange)


@pytest.fixture(scope="module")
def setup(module_monkey, module_upstreams):
    ups = {name: module_upstreams(name, behaviour) for name, behaviour in [
        ("solo", bad_closes), ("t1", bad_closes), ("t2", bad_closes), ("t3", bad_closes),
        ("pa", None), ("pb", bad_closes), ("pc", bad_closes), ("a", None), ("b", None),
    ]}
    dead = [f"127.0.0.1:{free_port()}" for _ in range(5)]
    proxy = start_proxy(
        module_monkey,
        # The defaults: AttemptsCount 2, OfflineTimeOut 60, PanicThreshold 50.
        entry("^/single/", ups["solo"]),
        entry("^/trio/", ups["t1"], ups["t2"], ups["t3"]),
        entry("^/panic/", ups["pa"], ups["pb"], ups["pc"], AttemptsCount=1),
        entry("^/calm/", ups["pa"], ups["pb"], ups["pc"], AttemptsCount=1, PanicThreshold=0),
        entry("^/dying/", ups["a"], dead[3], dead[4], AttemptsCount=1),
        entry("^/soonest/", dead[0], dead[1], AttemptsCount=1, PanicThreshold=0),
        entry("^/spread/", ups["a"], dead[2], ups["b"], AttemptsCount=1),
        entry("^/locking-spread/", ups["a"], dead[2], ups["b"], AttemptsCount=1,
              LoadBalancer="LockingRoundRobin"),
    )
    return proxy, ups, dead


def statuses(port: int, targets: list[str]) -> list[int]:
    with Client(port) as client:
        return [client.request("GET", target).status for target in targets]


def answered_by(port: int, target: str, count: int) -> Counter:
    with Client(port) as client:
        answers = Counter()
        for _ in range(count):
            response = client.request("GET", target)
            assert response.status == 200, response
            answers[response.header("X-Upstream")] += 1
    return answers


def entry_stats(port: int, match: str) -> dict:
    with Client(port) as client:
        document = json.loads(client.request("GET", STATUS_URL + ".json").body)
    (found,) = [e for e in document["entries"] if e["match"] == [match]]
    return found


def test_a_sole_server_whose_bad_url_closes_keeps_serving_every_other_url(proxy, ups):
    # Monkey's defaults took the only server offline for 60 s after two /bad: every
    # /good got 503. The sole server of an entry is never taken offline (nginx).
    answers = statuses(proxy.port, ["/single/bad"] * 3 + ["/single/good"] * 10
                       + ["/single/bad", "/single/bad", "/single/good"] * 5)
    assert answers == [502] * 3 + [200] * 10 + [502, 502, 200] * 5
    assert [row["state"] for row in proxy_stats(proxy.port)
            if row["upstream"] == ups["solo"].address] == ["up"]
    assert "is offline" not in proxy.log()


def test_a_request_failing_on_every_server_is_not_charged_to_them(proxy, ups):
    # Each /bad is retried on all three servers; twice that used to take all three
    # offline. The same request failing everywhere is taken as the request's fault.
    assert statuses(proxy.port, ["/trio/bad"] * 4) == [502] * 4
    assert answered_by(proxy.port, "/trio/good", 9) == {"t1": 3, "t2": 3, "t3": 3}
    found = entry_stats(proxy.port, "^/trio/")
    assert [row["state"] for row in found["upstreams"]] == ["up"] * 3
    assert sum(row["failures"] for row in found["upstreams"]) == 12
    assert "GET /trio/bad failed on 3 servers" in proxy.log()


def test_below_the_healthy_share_every_server_is_used(proxy, ups):
    # /panic/bad fails on pb and pc and succeeds on pa: pb and pc are charged and go
    # offline (AttemptsCount 1), leaving 1 of 3 servers online, below PanicThreshold 50.
    assert statuses(proxy.port, ["/panic/bad"] * 3) == [200] * 3
    rows = {row["upstream"]: row for row in entry_stats(proxy.port, "^/panic/")["upstreams"]}
    assert rows[ups["pb"].address]["state"] == rows[ups["pc"].address]["state"] == "offline"
    # Panic mode: the offline marks are not believed and the rotation reaches pb and pc
    # again; one that answers is back online, which ends panic mode.
    answers = answered_by(proxy.port, "/panic/good", 30)
    assert answers["pb"] + answers["pc"] > 0 and answers["pa"] < 30, answers
    rows = {row["upstream"]: row for row in entry_stats(proxy.port, "^/panic/")["upstreams"]}
    assert all(rows[ups[name].address]["state"] == "up" for name in answers)
    assert entry_stats(proxy.port, "^/panic/")["panic_workers"] == 0


def test_panic_mode_lasts_while_the_servers_are_down_and_requests_fail_over(proxy, ups):
    # Within a round of the rotation both dead servers refuse and go offline.
    assert statuses(proxy.port, ["/dying/x"] * 3) == [200] * 3
    assert wait_for(lambda: entry_stats(proxy.port, "^/dying/")["panic_workers"] == 1)
    failures = sum(row["failures"] for row in entry_stats(proxy.port, "^/dying/")["upstreams"])
    # Every request still gets its answer: the dead servers, tried again, fail over to a.
    assert answered_by(proxy.port, "/dying/x", 9) == {"a": 9}
    rows = entry_stats(proxy.port, "^/dying/")["upstreams"]
    # Each dead server's turn came three times, and each time it was tried.
    assert sum(row["failures"] for row in rows) >= failures + 6
    assert entry_stats(proxy.port, "^/dying/")["panic_workers"] == 1


def test_with_panic_mode_off_the_servers_online_take_everything(proxy, ups):
    assert statuses(proxy.port, ["/calm/bad"] * 3) == [200] * 3
    assert answered_by(proxy.port, "/calm/good", 10) == {"pa": 10}
    assert entry_stats(proxy.port, "^/calm/")["panic_workers"] == 0


def test_with_every_server_offline_the_one_back_soonest_is_tried_not_503(proxy, setup):
    dead = setup[2]
    # Both refuse: both offline (AttemptsCount 1), the first one first.
    assert get(proxy.port, "/soonest/x").status == 502
    response = get(proxy.port, "/soonest/x")
    assert response.status == 502 and b"could be reached" in response.body
    with Upstreams() as start:
        back = start("back", port=int(dead[0].rsplit(":", 1)[1]))
        response = get(proxy.port, "/soonest/x")
        assert response.status == 200 and response.header("X-Upstream") == "back"
        assert back.requests == 1


@pytest.mark.parametrize("prefix", ["spread", "locking-spread"])
def test_an_offline_servers_turns_are_shared_evenly(proxy, prefix):
    # Within a round of the rotation the dead server is tried, refuses and goes offline.
    assert statuses(proxy.port, [f"/{prefix}/x"] * 3) == [200] * 3
    # The rotation skips it: a and b alternate (it used to hand its turns to b: a got
    # 100 and b 200).
    assert answered_by(proxy.port, f"/{prefix}/x", 300) == {"a": 150, "b": 150}


# -- a balancer that names no server -----------------------------------------------------
EMPTY_BALANCER = '''
from monkey_py_plugins.balancers import Balancer


class Empty(Balancer):
    def candidates(self, request):
        return []
'''


@pytest.fixture
def empty_balancer(tmp_path, monkeypatch):
    """A third-party balancer ``Empty`` whose candidates() is always ``[]``, installed
    for the servers this test starts (through PYTHONPATH)."""
    monkeypatch.setenv("PYTHONPATH", balancer_package(
        tmp_path, "Empty = monkey_test_empty:Empty\n", {"monkey_test_empty": EMPTY_BALANCER}))


def test_a_balancer_naming_no_server_is_answered_clearly_and_logged_once(
        start_monkey, module_upstreams, empty_balancer):
    spare = module_upstreams("spare")
    proxy = start_proxy(start_monkey, entry("^/none/", spare, LoadBalancer="Empty"),
                        entry("^/spare/", f"127.0.0.1:{free_port()}", spare, "backup",
                              LoadBalancer="empty"))
    for _ in range(20):
        response = get(proxy.port, "/none/x")
        assert response.status == 503
        assert b"load balancer of this entry named no upstream server" in response.body
    # With a backup server, the backup answers.
    assert get(proxy.port, "/spare/x").header("X-Upstream") == "spare"
    lines = [line for line in proxy.log().splitlines() if "named no upstream server" in line]
    # Once per entry (then at most once a minute), not once per request.
    assert len(lines) == 2, lines
    assert "load balancer Empty (entry " in lines[0] and "GET /none/x; answering 503" in lines[0]
    assert "GET /spare/x; trying the backup servers" in lines[1]
