"""The cache's shared pieces: the invalidation log between memory stores, the figures
summed over workers (and shown on the status page), and the collapser's fills, waiters
and lock files on a real loop."""

from __future__ import annotations

import json
import os
import time
import xml.etree.ElementTree as ET

import pytest

from monkey_py.loop import EventLoop
from monkey_py_plugins.proxy_reverse.cache.collapse import (
    ENDED_ELSEWHERE,
    NOT_STORED,
    STORED,
    TIMED_OUT,
    Collapser,
)
from monkey_py_plugins.proxy_reverse.cache.figures import COLLAPSED, HITS, CacheStats
from monkey_py_plugins.proxy_reverse.cache.sync import KEY_BYTES, RING, InvalidationLog, Outcome
from monkey_py_plugins.proxy_reverse.stats import ProxyStats
from monkey_py_plugins.proxy_reverse.status.html import render_html
from monkey_py_plugins.proxy_reverse.status.json import render_json
from monkey_py_plugins.proxy_reverse.status.report import EntryStatus, StatusReport


# -- the invalidation log ------------------------------------------------------------------
def polled(log: InvalidationLog, held=()) -> list:
    """Poll ``log``; the worker's store held the keys in ``held`` (one response each)."""
    removed = []

    def remove(key):
        removed.append(key)
        return 1 if key in held else 0
    log.poll(remove)
    return removed


def workers(count: int) -> list[InvalidationLog]:
    """The log as each of ``count`` workers sees it after the fork."""
    first = InvalidationLog(count)
    logs = [first]
    for _ in range(count - 1):
        other = InvalidationLog.__new__(InvalidationLog)
        other.__dict__.update(first.__dict__)
        logs.append(other)
    for index, log in enumerate(logs):
        log.worker_started(index)
    return logs


def test_keys_published_by_one_worker_reach_every_worker_once():
    publisher, reader = workers(2)
    publisher.publish(b"http://a/1")
    publisher.publish(b"http://a/2")
    assert polled(reader) == [b"http://a/1", b"http://a/2"]
    assert polled(reader) == []
    assert polled(publisher) == [b"http://a/1", b"http://a/2"]
    assert polled(publisher) == []


def test_a_new_worker_starts_after_what_was_published_before_it():
    log, late = workers(2)
    log.publish(b"http://a/old")
    late.worker_started(1)
    assert polled(late) == []


def test_a_reader_a_whole_ring_behind_empties_its_store():
    publisher, reader = workers(2)
    for number in range(RING + 3):
        publisher.publish(b"http://a/%d" % number)
    assert polled(reader) == [None]
    assert polled(reader) == []
    assert publisher.outcome(RING + 3).emptied == 1


def test_a_key_longer_than_a_slot_empties_the_stores():
    publisher, reader = workers(2)
    publisher.publish(b"http://a/" + b"x" * KEY_BYTES)
    publisher.publish(None)
    assert polled(reader) == [None, None]


def test_the_outcome_of_a_purge_counts_what_each_live_worker_removed():
    one, two, three = workers(3)
    number = one.publish(b"http://a/p")
    polled(one, held={b"http://a/p"})
    assert one.outcome(number) == Outcome(removed=1, confirmed=1, pending=2)
    polled(two, held={b"http://a/p"})
    polled(three)
    assert one.outcome(number) == Outcome(removed=2, confirmed=3, pending=0)


def test_a_stopped_worker_is_not_waited_for():
    one, two = workers(2)
    two.worker_stopped()
    number = one.publish(b"http://a/p")
    polled(one)
    assert one.outcome(number) == Outcome(removed=0, confirmed=1, pending=0)


# -- the figures ---------------------------------------------------------------------------
def test_counters_and_store_sizes_are_summed_over_the_workers():
    stats = CacheStats(["e:1", "e:2"], workers=2, kind="memory", max_bytes=1000)
    for worker in (0, 1):
        stats.worker_started(worker)
        stats.count(1, HITS, 3)
        stats.count(1, COLLAPSED)
        stats.store_size({"bytes": 100 + worker, "entries": 2, "evictions": 1})
    first, second = stats.entries()
    assert first.hits == 0 and first.hit_ratio is None
    assert (second.entry, second.hits, second.collapsed) == ("e:2", 6, 2)
    assert second.hit_ratio == 1.0
    store = stats.store()
    assert (store.bytes, store.entries, store.evictions) == (201, 4, 2)


def test_the_disk_store_size_is_the_largest_estimate_not_the_sum():
    stats = CacheStats(["e:1"], workers=2, kind="disk", max_bytes=1000)
    for worker, size in ((0, 500), (1, 520)):
        stats.worker_started(worker)
        stats.store_size({"bytes": size, "entries": 5, "evictions": 0})
    assert (stats.store().bytes, stats.store().entries) == (520, 5)


def test_a_replacement_worker_keeps_the_counters_but_not_the_store_size():
    stats = CacheStats(["e:1"], workers=1, kind="memory", max_bytes=1000)
    stats.worker_started(0)
    stats.count(0, HITS)
    stats.store_size({"bytes": 300, "entries": 1, "evictions": 0})
    stats.worker_started(0)
    assert stats.entries()[0].hits == 1 and stats.store().bytes == 0


def test_the_status_page_shows_the_cache_in_html_and_json():
    cache = CacheStats(["<e>:1"], workers=1, kind="memory", max_bytes=1 << 20)
    cache.worker_started(0)
    cache.count(0, HITS, 3)
    cache.store_size({"bytes": 2048, "entries": 1, "evictions": 0})
    upstreams = ProxyStats([("<e>:1", "h:1", False)], workers=1)
    report = StatusReport("/s", 0.0, 1, [EntryStatus("<e>:1", ["^/"], "Naive",
                                                     upstreams.snapshot(), cache.entries()[0])],
                          cache.store())
    page = render_html(report).decode()
    ET.fromstring(page.split("\n", 1)[1])  # well-formed, the doctype aside
    assert "<td>3</td>" in page and "Cache store: memory" in page and "<e>" not in page
    document = json.loads(render_json(report))
    assert document["entries"][0]["cache"]["hits"] == 3
    assert document["entries"][0]["cache"]["hit_ratio"] == 1.0
    assert document["cache_store"] == {
        "kind": "memory", "max_bytes": 1 << 20, "bytes": 2048, "entries": 1, "evictions": 0,
        "damaged": 0, "write_errors": {"no-space": 0, "read-only": 0, "other": 0}}


# -- collapsing ------------------------------------------------------------------------------
class FakeRequest:
    on_abort = None


def run_until(loop: EventLoop, predicate, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the loop never got there"
        loop.run_once()


def test_waiters_are_released_when_the_fill_ends():
    loop = EventLoop()
    collapser = Collapser(loop, None)
    fill = collapser.begin(b"k", 5)
    assert fill is not None and collapser.begin(b"k", 5) is None and collapser.busy(b"k")
    released = []
    requests = [FakeRequest() for _ in range(3)]
    for request in requests:
        collapser.wait(b"k", request, 5, released.append)
        assert request.on_abort is not None
    requests[2].on_abort()  # this client left
    fill.done(True)
    fill.done(False)
    run_until(loop, lambda: len(released) == 2)
    assert released == [STORED, STORED] and not collapser.busy(b"k")
    assert requests[0].on_abort is None
    loop.close()


def test_a_waiter_times_out_and_a_failed_fill_says_so():
    loop = EventLoop()
    collapser = Collapser(loop, None)
    fill = collapser.begin(b"k", 5)
    released = []
    started = time.monotonic()
    collapser.wait(b"k", FakeRequest(), 0.05, lambda why: released.append(("short", why)))
    collapser.wait(b"k", FakeRequest(), 5, lambda why: released.append(("long", why)))
    run_until(loop, lambda: released)
    assert released == [("short", TIMED_OUT)] and time.monotonic() - started < 1
    fill.done(False)
    run_until(loop, lambda: len(released) == 2)
    assert released[1] == ("long", NOT_STORED)
    loop.close()


def test_lock_files_collapse_two_workers(tmp_path):
    loop = EventLoop()
    one, two = Collapser(loop, str(tmp_path)), Collapser(loop, str(tmp_path))
    fill = one.begin(b"k", 5)
    assert fill is not None and len(os.listdir(tmp_path)) == 1
    assert two.begin(b"k", 5) is None and two.busy(b"k")
    released = []
    two.wait(b"k", FakeRequest(), 5, released.append)
    loop.run_once()
    assert released == []
    fill.done(True)
    assert os.listdir(tmp_path) == []
    run_until(loop, lambda: released)
    assert released == [ENDED_ELSEWHERE]
    loop.close()


def test_a_stale_lock_file_is_taken_over(tmp_path):
    loop = EventLoop()
    dead = Collapser(loop, str(tmp_path))
    dead.begin(b"k", 5)
    (lock,) = os.listdir(tmp_path)
    old = time.time() - 60
    os.utime(tmp_path / lock, (old, old))
    assert Collapser(loop, str(tmp_path)).begin(b"k", 5) is not None
    loop.close()


def test_a_fill_that_outlives_its_lock_timeout_no_longer_holds_others_back():
    loop = EventLoop()
    collapser = Collapser(loop, None)
    forgotten = collapser.begin(b"k", 0.05)
    assert forgotten is not None and collapser.busy(b"k")
    woken = []
    loop.call_later(0.06, lambda: woken.append(True))
    run_until(loop, lambda: woken)
    assert not collapser.busy(b"k")
    taken = collapser.begin(b"k", 5)
    assert taken is not None and taken is not forgotten
    forgotten.done(False)  # ending late does not release the new fill's place
    assert collapser.busy(b"k")
    loop.close()


@pytest.mark.parametrize("tier, scope", [
    (64 << 20, "in the memory tiers of 2 worker(s), at most 64.0 MiB each, in front of Redis"),
    (0, "in Redis, without a memory tier"),
])
def test_the_status_page_says_where_a_redis_store_keeps_responses(tier, scope):
    cache = CacheStats(["e:1"], workers=2, kind="redis", max_bytes=tier)
    cache.worker_started(0)
    report = StatusReport("/s", 0.0, 2, [], cache.store())
    page = render_html(report).decode()
    assert f"Cache store: redis, 0.0 MiB in 0 response(s) {scope};" in page
    assert "on disk" not in page
