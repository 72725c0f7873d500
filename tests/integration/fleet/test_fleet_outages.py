"""Redis killed and restarted under load: every request (proxied, and statistics pages
that read the fleet's figures) gets exactly one answer, the workers hold no more
descriptors afterwards, and the instances share their health again once Redis is back.
Redis stalled: the statistics page waits at most the command timeout, the health checks
go on locally."""

from __future__ import annotations

import re
import signal
import threading
import time

from fleet_support import answers, fleet_proxy, listening_workers, status
from proxy_support import STATUS_URL, entry
from redis_support import RedisServer
from support import open_fds, raw_request, wait_for
from upstreams import answer_name


class Load:
    """Threads sending requests, each on a connection of its own, until stopped; every
    answer is kept."""

    def __init__(self, targets: list[tuple[int, str]], threads: int = 4) -> None:
        self.targets = targets
        self.stopping = threading.Event()
        self.answers: list[bytes] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(number,))
                        for number in range(threads)]
        for thread in self.threads:
            thread.start()

    def _run(self, number: int) -> None:
        turn = number
        while not self.stopping.is_set():
            port, target = self.targets[turn % len(self.targets)]
            turn += 1
            answer = raw_request(port, f"GET {target} HTTP/1.1\r\nHost: localhost\r\n"
                                       "Connection: close\r\n\r\n".encode())
            with self.lock:
                self.answers.append(answer)

    def stop(self) -> list[bytes]:
        self.stopping.set()
        for thread in self.threads:
            thread.join()
        return self.answers


def links_up(port: int) -> bool:
    fleet = status(port)["fleet"]
    return fleet["error"] is None and all(link["up"] for link in fleet["links"])


def worker_fds(proxies) -> dict[int, int]:
    return {pid: open_fds(pid) for proxy in proxies for pid in proxy.worker_pids()}


def redis_clients(redis) -> int:
    """The connections Redis has, besides the one asking."""
    return len(redis.call("CLIENT", "LIST").splitlines()) - 1


def settled_fds(proxies, redis) -> dict[int, int]:
    """The workers' descriptors once each has both links up and nothing in flight."""
    assert wait_for(lambda: redis_clients(redis) == 8, timeout=15)
    found = {}

    def steady() -> bool:
        nonlocal found
        last, found = found, worker_fds(proxies)
        time.sleep(0.2)
        return found == last

    assert wait_for(steady)
    return found


def test_killing_and_restarting_redis_under_load_fails_no_request(
        start_monkey, module_upstreams, tmp_path):
    redis = RedisServer(tmp_path / "redis")
    u, v = module_upstreams("u"), module_upstreams("v")
    shared = entry("^/", u, v, Name="api", KeepAliveConnections=0)
    proxies = [fleet_proxy(start_monkey, redis.url(), name, shared, workers=2)
               for name in ("a", "b")]
    try:
        assert wait_for(lambda: listening_workers(redis) == 4)
        assert all(wait_for(lambda: links_up(proxy.port)) for proxy in proxies)
        targets = [(proxy.port, target) for proxy in proxies
                   for target in ("/x", "/y", STATUS_URL + ".json")]
        Load(targets).stop()                         # every worker warmed up
        before = settled_fds(proxies, redis)
        load = Load(targets)
        time.sleep(0.5)
        redis.kill()
        time.sleep(1.5)
        redis.start()
        assert all(wait_for(lambda: links_up(proxy.port), timeout=15) for proxy in proxies)
        time.sleep(0.5)
        got = load.stop()
        assert len(got) > 100, len(got)
        for answer in got:
            assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
            assert len(re.findall(rb"HTTP/1\.1 \d{3} ", answer)) == 1, answer[:200]
        assert settled_fds(proxies, redis) == before
        for proxy in proxies:
            log = proxy.log()
            assert "Traceback" not in log
            # One WARNING per link and worker, however long the outage.
            assert log.count("is down (") == 4, log
        # Shared health works again: a mark made now reaches the other instance.
        assert wait_for(lambda: listening_workers(redis) == 4)
        redis.call("SET", f"monkey:fleet:offline:api/{v.address}", "a", "PX", 60000)
        redis.call("PUBLISH", "monkey:fleet:health",
                   '{"kind": "offline", "server": "api/%s", "ms": 60000, "from": "a/1"}'
                   % v.address)
        assert wait_for(lambda: answers(proxies[1].port, "/z", 8) == {"u": 8})
    finally:
        redis.stop()


def test_a_stalled_redis_costs_the_status_page_its_timeout_and_checks_go_local(
        start_monkey, module_upstreams, tmp_path):
    redis = RedisServer(tmp_path / "redis")
    checked = []

    def health(exchange) -> bool:
        if exchange.request.target == "/health":
            checked.append(time.monotonic())
        return answer_name(exchange)

    u = module_upstreams("u", health)
    proxy = fleet_proxy(start_monkey, redis.url(), "a",
                        entry("^/", u, Name="api", HealthCheck="/health",
                              HealthCheckInterval=0.5))
    try:
        assert wait_for(lambda: links_up(proxy.port))
        redis.proc.send_signal(signal.SIGSTOP)       # Redis accepts, and answers nothing
        stalled = started = time.monotonic()
        fleet = status(proxy.port)["fleet"]
        waited = time.monotonic() - started
        # The read timed out, or failed at once if a command before it had timed out.
        assert fleet["error"].startswith("the fleet's figures could not be read: ")
        assert "no reply from Redis in 0.25s" in fleet["error"]
        assert waited < 2, waited
        assert answers(proxy.port, "/x", 10) == {"u": 10}
        # The leases get no answer: the instance checks on its own, once an interval.
        time.sleep(2.5)
        assert len([at for at in checked if at > stalled + 1]) >= 2
        fleet = status(proxy.port)["fleet"]
        assert fleet["error"] is not None and not fleet["links"][0]["up"]
        assert fleet["links"][0]["timeouts"] >= 1
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    assert wait_for(lambda: links_up(proxy.port), timeout=15)
    assert wait_for(lambda: status(proxy.port)["fleet"]["totals"]["up"] == 1, timeout=5)
    assert "Traceback" not in proxy.log()
    redis.stop()
