"""The cache's stores through the real proxy: memory (per worker, bounded in bytes) and
disk (shared, kept across restarts, served with sendfile, bounded), objects above
CacheMaxObjectSize, PURGE, invalidation across workers, the statistics, and the
configuration checks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cache_support import (
    Answer,
    Raw,
    cache_figures,
    fetches,
    serving_worker,
    store_figures,
)
from proxy_support import STATUS_URL, ClientFrom, entry, proxy_conf, start_proxy
from rawhttp import Client
from support import MonkeyProcess, free_port, site, write_confdir
from upstreams import Exchange, payload

MAX_AGE = [("Cache-Control", "max-age=600")]


def fetch(port: int, target: str, method: str = "GET", headers=(), timeout: float = 10):
    with Client(port, timeout=timeout) as client:
        return client.request(method, target, headers=list(headers))


def is_hit(response) -> bool:
    return (response.header("Cache-Status") or "").startswith("monkey_py; hit")


def chunked_answer(body: bytes, block: int = 16384):
    """A behaviour answering ``body`` chunked (no Content-Length), cacheable."""
    def behaviour(exchange: Exchange) -> bool:
        exchange.send(exchange.head(200, [("Transfer-Encoding", "chunked"), *MAX_AGE]))
        for start in range(0, len(body), block):
            part = body[start:start + block]
            exchange.send(b"%x\r\n%s\r\n" % (len(part), part))
        exchange.send(b"0\r\n\r\n")
        return exchange.keep_alive
    return behaviour


def directory_size(directory) -> int:
    """The bytes of the files in ``directory`` (a worker may evict one meanwhile)."""
    total = 0
    for path in Path(directory).iterdir():
        try:
            total += path.stat().st_size if path.is_file() else 0
        except FileNotFoundError:
            pass
    return total


# -- the disk store --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def disk(module_monkey, upstream, tmp_path_factory):
    directory = tmp_path_factory.mktemp("disk-cache")
    proxy = start_proxy(module_monkey, entry("^/", upstream, Cache="On"), workers=2,
                        CacheStore="disk", CacheDirectory=str(directory),
                        CacheMaxSize="1", CacheMaxObjectSize="512")
    return proxy, directory


def test_the_disk_store_serves_hits_from_its_files(disk, upstream, routes):
    proxy, directory = disk
    body = payload(300_000)
    routes.set("/disk/big", Answer(body=body, headers=MAX_AGE))
    assert fetch(proxy.port, "/disk/big").body == body
    for _ in range(4):
        again = fetch(proxy.port, "/disk/big")
        assert again.body == body and is_hit(again)
    ranged = fetch(proxy.port, "/disk/big", headers=[("Range", "bytes=1000-1999")])
    assert ranged.status == 206 and ranged.body == body[1000:2000]
    head = fetch(proxy.port, "/disk/big", method="HEAD")
    assert head.header("Content-Length") == "300000" and is_hit(head)
    assert fetches(upstream, "/disk/big") == 1
    assert directory_size(directory) > 300_000


def test_the_disk_store_stays_within_its_size(disk, routes):
    proxy, directory = disk
    for index in range(40):
        target = f"/disk/many/{index}"
        routes.set(target, Answer(body=payload(65536), headers=MAX_AGE))
        assert fetch(proxy.port, target).status == 200
    assert directory_size(directory) <= 1024 * 1024 + 70_000
    store = store_figures(proxy.port)
    assert store["kind"] == "disk" and store["evictions"] > 0
    assert store["bytes"] <= 1024 * 1024 + 70_000


def test_a_response_above_the_largest_object_streams_through_uncached(disk, upstream, routes):
    proxy, _ = disk
    body = payload(600_000)
    routes.set("/disk/huge", Answer(body=body, headers=MAX_AGE))
    for _ in range(2):
        response = fetch(proxy.port, "/disk/huge")
        assert response.body == body and not is_hit(response)
        assert "stored" not in response.header("Cache-Status")
    assert fetches(upstream, "/disk/huge") == 2


def test_the_disk_store_outlives_the_server_and_serves_hits_with_itself_upstream(
        tmp_path, upstream, routes):
    """Stored by one run, served by the next, whose only upstream is the server itself."""
    port = free_port()
    directory = tmp_path / "conf" / "cache"   # CacheDirectory is relative to it
    docroot = tmp_path / "htdocs"
    docroot.mkdir()
    routes.set("/kept", Answer(body=b"kept across restarts", headers=MAX_AGE))

    def run(server_list: str) -> MonkeyProcess:
        confdir = write_confdir(
            tmp_path, [f"Listen 127.0.0.1:{port}", "Workers 1"],
            {"default": site("localhost", docroot)}, ["proxy_reverse"],
            {"proxy_reverse": proxy_conf(entry("^/", server_list, Cache="On"),
                                         CacheStore="disk", CacheDirectory="cache")})
        return MonkeyProcess(confdir, port)

    first = run(upstream.address)
    try:
        assert fetch(port, "/kept").body == b"kept across restarts"
    finally:
        first.stop()
    assert any(path.is_file() for path in directory.iterdir())
    second = run(f"127.0.0.1:{port}")
    try:
        hit = fetch(port, "/kept")
        assert hit.status == 200 and hit.body == b"kept across restarts" and is_hit(hit)
        assert fetch(port, "/not-kept").status == 508
    finally:
        second.stop()
    assert fetches(upstream, "/kept") == 1


# -- the memory store ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def memory(module_monkey, upstream):
    return start_proxy(module_monkey, entry("^/", upstream, Cache="On"),
                       CacheMaxSize="0.25", CacheMaxObjectSize="64")


def test_memory_stays_bounded_however_many_urls(memory, routes):
    with Client(memory.port, timeout=10) as client:
        for index in range(600):
            target = f"/mem/{index}"
            routes.set(target, Answer(body=b"m" * 1024, headers=MAX_AGE))
            assert client.request("GET", target).status == 200
    store = store_figures(memory.port)
    assert store["kind"] == "memory" and store["max_bytes"] == 256 * 1024
    assert 0 < store["bytes"] <= 256 * 1024
    assert store["evictions"] > 0 and store["entries"] < 600
    assert is_hit(fetch(memory.port, "/mem/599"))
    assert not is_hit(fetch(memory.port, "/mem/0"))


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_above_the_largest_object_the_client_still_gets_it_whole(memory, upstream, routes,
                                                                 chunked):
    target = f"/mem/large-{chunked}"
    body = payload(200_000)
    routes.set(target, Raw(chunked_answer(body)) if chunked else Answer(body=body,
                                                                        headers=MAX_AGE))
    for _ in range(2):
        response = fetch(memory.port, target)
        assert response.body == body and not is_hit(response)
    assert fetches(upstream, target) == 2


# -- purge ---------------------------------------------------------------------------------
def test_purge_removes_a_stored_response(memory, upstream, routes):
    routes.set("/purge/me", Answer(body=b"v1", headers=MAX_AGE), Answer(body=b"v2",
                                                                        headers=MAX_AGE))
    fetch(memory.port, "/purge/me")
    assert is_hit(fetch(memory.port, "/purge/me"))
    purged = fetch(memory.port, "/purge/me", method="PURGE")
    assert purged.status == 200
    assert fetch(memory.port, "/purge/me", method="PURGE").status == 404
    assert fetch(memory.port, "/purge/me").body == b"v2"
    assert fetches(upstream, "/purge/me") == 2
    assert cache_figures(memory.port)["purged"] == 1


def test_purge_is_refused_outside_cache_purge_allow(module_monkey, upstream, routes):
    proxy = start_proxy(module_monkey, entry("^/", upstream, Cache="On"),
                        CachePurgeAllow="127.0.0.1")
    routes.set("/purge/guarded", Answer(body=b"x", headers=MAX_AGE))
    fetch(proxy.port, "/purge/guarded")
    with ClientFrom(proxy.port, "127.0.0.5") as client:
        assert client.request("PURGE", "/purge/guarded").status == 403
    assert is_hit(fetch(proxy.port, "/purge/guarded"))
    assert fetch(proxy.port, "/purge/guarded", method="PURGE").status == 200


# -- several workers with memory stores ---------------------------------------------------
@pytest.fixture(scope="module")
def two_workers(module_monkey, upstream):
    return start_proxy(module_monkey, entry("^/", upstream, Cache="On"), workers=2)


def stored_in_both_workers(port: int, target: str) -> None:
    """Request ``target`` on new connections until both workers' stores hold it."""
    before = cache_figures(port)["stored"]
    for _ in range(400):
        fetch(port, target)
        if cache_figures(port)["stored"] - before >= 2:
            return
    raise AssertionError("the requests never reached both workers")


@pytest.mark.parametrize("method", ["PURGE", "POST"])
def test_purge_and_invalidation_reach_every_workers_store(two_workers, routes, method):
    target = f"/workers/{method}"
    routes.set(target, Answer(body=b"v1", headers=MAX_AGE))
    stored_in_both_workers(two_workers.port, target)
    routes.set(target, Answer(body=b"v2", headers=MAX_AGE))
    headers = [("Content-Length", "0")] if method == "POST" else []
    assert fetch(two_workers.port, target, method=method, headers=headers).status == 200
    for _ in range(30):
        assert fetch(two_workers.port, target).body == b"v2"


def test_purge_answers_for_every_worker_and_repeated_purges_agree(two_workers, routes):
    target = "/workers/purge-twice"
    routes.set(target, Answer(body=b"v1", headers=MAX_AGE))
    stored_in_both_workers(two_workers.port, target)
    before = cache_figures(two_workers.port)["purged"]
    first = fetch(two_workers.port, target, method="PURGE")
    assert first.status == 200
    assert b"2 response(s) removed in 2 of 2 worker(s)" in first.body
    # New connections reach either worker: each has applied the purge, and says so.
    assert [fetch(two_workers.port, target, method="PURGE").status
            for _ in range(12)] == [404] * 12
    assert cache_figures(two_workers.port)["purged"] - before == 2


def test_a_purge_answers_in_time_when_a_worker_is_stalled(start_monkey, upstream, routes):
    proxy = start_proxy(start_monkey, entry("^/", upstream, Cache="On"), workers=2)
    target = "/workers/stalled"
    routes.set(target, Answer(body=b"v1", headers=MAX_AGE))
    stored_in_both_workers(proxy.port, target)
    routes.set(target, Answer(body=b"v2", headers=MAX_AGE))
    with Client(proxy.port, timeout=10) as client:
        assert client.request("GET", target).status == 200
        running = serving_worker(proxy, client)
        (stalled,) = set(proxy.worker_pids()) - {running}
        os.kill(stalled, signal.SIGSTOP)
        try:
            started = time.monotonic()
            answer = client.request("PURGE", target)
            assert time.monotonic() - started < 4
        finally:
            os.kill(stalled, signal.SIGCONT)
    assert answer.status == 200
    assert b"1 response(s) removed in 1 of 2 worker(s)" in answer.body
    assert b"1 of 2 worker(s) did not confirm within 2 s" in answer.body
    # The stalled worker applies the purge before it serves anything again.
    for _ in range(20):
        assert fetch(proxy.port, target).body == b"v2"


def test_a_purge_that_only_a_stalled_worker_could_answer_says_202(start_monkey, upstream,
                                                                    routes):
    proxy = start_proxy(start_monkey, entry("^/", upstream, Cache="On"), workers=2)
    target = "/workers/held-by-the-stalled-one"
    routes.set(target, Answer(body=b"v1", headers=MAX_AGE))
    with Client(proxy.port, timeout=10) as holder:
        assert holder.request("GET", target).status == 200
        stalled = serving_worker(proxy, holder)
    for _ in range(40):
        other = Client(proxy.port, timeout=10)
        assert other.request("GET", STATUS_URL + ".json").status == 200
        if serving_worker(proxy, other) != stalled:
            break
        other.close()
    else:
        raise AssertionError("no connection reached the other worker")
    with other:
        os.kill(stalled, signal.SIGSTOP)
        try:
            answer = other.request("PURGE", target)
        finally:
            os.kill(stalled, signal.SIGCONT)
    assert answer.status == 202, answer
    assert b"1 of 2 worker(s) did not confirm within 2 s" in answer.body
    routes.set(target, Answer(body=b"v2", headers=MAX_AGE))
    for _ in range(20):
        assert fetch(proxy.port, target).body == b"v2"


def test_the_figures_are_summed_over_the_workers(two_workers, routes):
    routes.set("/workers/figures", Answer(body=b"x", headers=MAX_AGE))
    before = cache_figures(two_workers.port)
    for _ in range(20):
        fetch(two_workers.port, "/workers/figures")
    after = cache_figures(two_workers.port)
    assert after["hits"] + after["misses"] - before["hits"] - before["misses"] == 20
    assert 1 <= after["misses"] - before["misses"] <= 2
    assert after["stored"] - before["stored"] == after["misses"] - before["misses"]
    store = store_figures(two_workers.port)
    assert store["entries"] >= 1 and store["bytes"] > 0


# -- statistics --------------------------------------------------------------------------
def test_the_statistics_page_shows_the_cache_in_every_format(memory, routes):
    routes.set("/stats/x", Answer(body=b"x", headers=MAX_AGE))
    fetch(memory.port, "/stats/x")
    fetch(memory.port, "/stats/x")
    figures = cache_figures(memory.port)
    assert figures["hits"] >= 1 and figures["misses"] >= 1 and figures["stored"] >= 1
    assert 0 < figures["hit_ratio"] < 1
    page = fetch(memory.port, STATUS_URL).body.decode()
    assert "Cache store: memory" in page and "<th>Hits</th>" in page
    text = fetch(memory.port, STATUS_URL + "/metrics").body.decode()
    samples = {(s.name, s.labels.get("result")): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("monkey_proxy_cache_responses_total", "hit")] == figures["hits"]
    assert samples[("monkey_proxy_cache_responses_total", "miss")] == figures["misses"]
    assert samples[("monkey_proxy_cache_stored_total", None)] == figures["stored"]
    assert samples[("monkey_proxy_cache_store_bytes", None)] > 0


# -- configuration ----------------------------------------------------------------------
def test_cache_on_in_the_defaults_reaches_every_entry_that_does_not_turn_it_off(
        start_monkey, upstream, routes):
    proxy = start_proxy(start_monkey, entry("^/defaults/off/", upstream, Cache="Off"),
                        entry("^/defaults/", upstream), Cache="On")
    for target in ("/defaults/on", "/defaults/off/x"):
        routes.set(target, Answer(body=b"x", headers=MAX_AGE))
        fetch(proxy.port, target)
    assert is_hit(fetch(proxy.port, "/defaults/on"))
    assert fetch(proxy.port, "/defaults/off/x").header("Cache-Status") is None
    assert fetches(upstream, "/defaults/off/x") == 2


def check(tmp_path, **defaults) -> tuple[subprocess.CompletedProcess, Path]:
    """``monkey check`` of a cache-enabled configuration; also the proxy's file."""
    docroot = tmp_path / "htdocs"
    docroot.mkdir(exist_ok=True)
    confdir = write_confdir(tmp_path, [f"Listen 127.0.0.1:{free_port()}", "Workers 1"],
                            {"default": site("localhost", docroot)}, ["proxy_reverse"],
                            {"proxy_reverse": proxy_conf(
                                entry("^/", "127.0.0.1:9", Cache="On"), **defaults)})
    result = subprocess.run([sys.executable, "-m", "monkey_py", "check", "-c", str(confdir)],
                            capture_output=True, text=True, timeout=20)
    return result, confdir / "plugins" / "proxy_reverse" / "proxy_reverse.conf"


@pytest.mark.parametrize("defaults, culprit, message", [
    ({"CacheStore": "disk"}, "CacheStore", "CacheStore disk needs a CacheDirectory"),
    ({"CacheStore": "tape"}, "CacheStore", "'tape' is not valid; valid values: memory, disk"),
    ({"CacheStore": "disk", "CacheDirectory": "/proc/forbidden"}, "CacheDirectory",
     "cache directory /proc/forbidden:"),
    ({"CacheMaxSize": "lots"}, "CacheMaxSize", "'lots' is not a size in megabytes"),
    ({"CacheMaxObjectSize": "0"}, "CacheMaxObjectSize", "out of range"),
    ({"CachePurgeAllow": "10.0.0.0/33"}, "CachePurgeAllow", "10.0.0.0/33"),
], ids=["disk-without-directory", "unknown-store", "unusable-directory", "bad-size",
        "zero-object-size", "bad-network"])
def test_cache_keys_are_checked_at_start_with_file_and_line(tmp_path, defaults, culprit,
                                                            message):
    result, conf = check(tmp_path, **defaults)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    line = next(number for number, text in enumerate(conf.read_text().splitlines(), 1)
                if culprit in text)
    assert result.stderr.startswith(f"monkey: {conf}:{line}: ") and message in result.stderr


def test_a_relative_cache_directory_is_made_in_the_configuration_directory(tmp_path):
    result, _ = check(tmp_path, CacheStore="disk", CacheDirectory="var/cache")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "conf" / "var" / "cache").is_dir()
