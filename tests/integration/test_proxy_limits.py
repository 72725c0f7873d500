"""What bounds the load on the servers: MaxConnections with its queue (a full queue and
a queue timeout answer 503), a busy server passed over for one with room, and the retry
budget that refuses failovers beyond its share."""

from __future__ import annotations

import json
import threading
import time

import pytest

from proxy_support import STATUS_URL, entry, get, start_proxy
from rawhttp import Client
from support import wait_for
from upstreams import hang_up, slow

# Each upstream answers once its gate is open: closed at the start of each test.
GATES: dict[str, threading.Event] = {}


@pytest.fixture(scope="module")
def setup(module_monkey, module_upstreams):
    ups = {}
    for name, then in [("one", None), ("p1", None), ("p2", None), ("flaky", hang_up),
                       ("steady", None)]:
        GATES[name] = threading.Event()
        ups[name] = module_upstreams(name, slow(GATES[name], then))
    proxy = start_proxy(
        module_monkey,
        entry("^/limited/", ups["one"], MaxConnections=1, QueueSize=1, QueueTimeout=30),
        entry("^/impatient/", ups["one"], MaxConnections=1, QueueTimeout=0.5),
        entry("^/pair/", ups["p1"], ups["p2"], LoadBalancer="First-Alive", MaxConnections=1,
              QueueSize=0),
        entry("^/budget/", ups["flaky"], ups["steady"], LoadBalancer="First-Alive",
              AttemptsCount=1000, RetryBudget=0, RetryBudgetMin=1),
    )
    return proxy, ups


@pytest.fixture(autouse=True)
def gates(proxy, setup):
    """Every upstream's gate starts closed; whatever happens, all are open at the end
    (before ``proxy`` checks that every request has settled)."""
    for name in setup[1]:
        GATES[name].clear()
    yield GATES
    for gate in GATES.values():
        gate.set()


class Background:
    """A request sent from a thread; ``response`` once it is answered."""

    def __init__(self, port: int, target: str) -> None:
        self.response = None
        self.thread = threading.Thread(target=self._run, args=(port, target))
        self.thread.start()

    def _run(self, port: int, target: str) -> None:
        with Client(port, timeout=60) as client:
            self.response = client.request("GET", target)

    def result(self):
        self.thread.join(60)
        return self.response


def entry_stats(port: int, match: str) -> dict:
    with Client(port) as client:
        document = json.loads(client.request("GET", STATUS_URL + ".json").body)
    (found,) = [e for e in document["entries"] if e["match"] == [match]]
    return found


def test_a_request_waits_for_a_busy_server_and_a_full_queue_answers_503(proxy, ups, gates):
    first = Background(proxy.port, "/limited/1")
    assert ups["one"].wait_until(lambda up: up.requests == 1)
    second = Background(proxy.port, "/limited/2")
    assert wait_for(lambda: entry_stats(proxy.port, "^/limited/")["queue"]["waiting"] == 1)
    # MaxConnections 1 in use, QueueSize 1 taken: a third request is refused at once.
    third = get(proxy.port, "/limited/3")
    assert third.status == 503 and b"busy" in third.body
    gates["one"].set()
    assert first.result().status == 200 and second.result().status == 200
    assert [r.target for r in ups["one"].received] == ["/limited/1", "/limited/2"]
    figures = entry_stats(proxy.port, "^/limited/")
    assert figures["queue"] == {"waiting": 0, "full": 1, "timeouts": 0}
    assert figures["limits"]["max_connections"] == 1
    assert "entry plugins/proxy_reverse/proxy_reverse.conf:" in proxy.log()


def test_a_request_that_waits_longer_than_queue_timeout_gets_503(proxy, ups, gates):
    first = Background(proxy.port, "/impatient/1")
    assert ups["one"].wait_until(lambda up: up.requests == 1)
    started = time.monotonic()
    with Client(proxy.port, timeout=15) as client:
        response = client.request("GET", "/impatient/2")
    elapsed = time.monotonic() - started
    assert response.status == 503 and b"in time" in response.body
    # QueueTimeout 0.5 (the upper bound only catches a timer that never fires).
    assert 0.4 <= elapsed < 10, elapsed
    gates["one"].set()
    assert first.result().status == 200
    assert ups["one"].requests == 1
    assert entry_stats(proxy.port, "^/impatient/")["queue"]["timeouts"] == 1


def test_a_busy_server_is_passed_over_for_one_with_room(proxy, ups, gates):
    first = Background(proxy.port, "/pair/1")
    assert ups["p1"].wait_until(lambda up: up.requests == 1)
    # First-Alive names p1 first, which is at MaxConnections: p2 takes the request.
    second = Background(proxy.port, "/pair/2")
    assert ups["p2"].wait_until(lambda up: up.requests == 1)
    # Both busy and no queue (QueueSize 0): 503 at once.
    assert get(proxy.port, "/pair/3").status == 503
    gates["p1"].set()
    gates["p2"].set()
    assert first.result().header("X-Upstream") == "p1"
    assert second.result().header("X-Upstream") == "p2"


def test_the_retry_budget_refuses_failovers_beyond_its_share(proxy, ups, gates):
    # Two requests wait at flaky, which then hangs up on both. RetryBudgetMin 1 and
    # RetryBudget 0 %: one of them may fail over to steady, the other gets its 502.
    requests = [Background(proxy.port, f"/budget/{n}") for n in range(2)]
    assert ups["flaky"].wait_until(lambda up: up.requests == 2)
    gates["flaky"].set()
    assert wait_for(lambda: any(r.response is not None for r in requests), timeout=10)
    (refused,) = [r.response for r in requests if r.response is not None]
    assert refused.status == 502
    gates["steady"].set()
    statuses = sorted(r.result().status for r in requests)
    assert statuses == [200, 502]
    assert ups["steady"].requests == 1
    assert "the retry budget is spent; answering 502" in proxy.log()
    assert entry_stats(proxy.port, "^/budget/")["retries"] == {"retries": 1, "denied": 1}
