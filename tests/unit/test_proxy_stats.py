"""The proxy's shared statistics: per-worker rows summed across real forked processes,
the per-second ring, the latency histogram, and the Prometheus text made from them."""

from __future__ import annotations

import os
import traceback
from types import SimpleNamespace
from typing import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monkey_py_plugins.proxy_reverse.history import INTERVAL_SECONDS, INTERVALS
from monkey_py_plugins.proxy_reverse.stats import (
    ERROR_BYTES,
    ERROR_SEQ,
    HISTORY_SECONDS,
    LATENCY_BUCKETS,
    ProxyStats,
)
from monkey_py_plugins.proxy_reverse.status.prometheus import render_prometheus
from monkey_py_plugins.proxy_reverse.status.report import EntryStatus, StatusReport

LABELS = [("e.conf:3", "10.0.0.1:80", False), ("e.conf:3", "10.0.0.2:80", True)]


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.25) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def in_children(stats: ProxyStats, work: Callable[[ProxyStats, int], None]) -> None:
    """Run ``work(stats, index)`` as worker ``index`` in one forked child per worker."""
    children = []
    for index in range(stats.workers):
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                stats.worker_started(index)
                work(stats, index)
                stats.publish()               # as the worker's timer does
                status = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(status)
        children.append(pid)
    for pid in children:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, f"child {pid} failed"


def by_name(stats: ProxyStats) -> dict:
    """What this process's status page shows: its own counts published, then read."""
    stats.publish()
    return {up.name: up for up in stats.snapshot()}


# -- aggregation across workers -------------------------------------------------------------
def test_forked_workers_write_their_own_rows_and_a_reader_sums_them():
    clock = Clock()
    stats = ProxyStats(LABELS, workers=2, clock=clock)

    def work(stats: ProxyStats, index: int) -> None:
        for _ in range(10 + index):
            stats.opened(0)
            stats.responded(0, 0.002)
            stats.closed(0)
        stats.opened(1)                       # left open: one active connection each
        stats.failed(0, f"connect: refused by worker {index}", 0.0)

    in_children(stats, work)
    first, backup = stats.snapshot()
    assert (first.requests, first.responses, first.failures) == (23, 21, 2)
    assert first.active == 0
    assert backup.active == 2 and backup.requests == 0 and backup.backup
    assert first.latency_sum == pytest.approx(21 * 0.002)
    assert first.mean_latency == pytest.approx(0.002)
    assert first.last_error.startswith("connect: refused by worker ")
    assert first.workers == 2


def test_the_latest_error_of_any_worker_wins():
    clock = Clock()
    stats = ProxyStats(LABELS, workers=2, clock=clock)
    stats.worker_started(1)
    stats.failed(0, "read timed out", 0.0)
    clock.now += 2
    stats.worker_started(0)
    stats.failed(0, "connect: Connection refused", 0.0)
    clock.now += 3
    up = by_name(stats)["10.0.0.1:80"]
    assert up.last_error == "connect: Connection refused"
    assert up.last_error_age == pytest.approx(3.0)


def test_a_long_error_is_cut_to_the_space_it_has():
    stats = ProxyStats(LABELS, workers=1, clock=Clock())
    stats.worker_started(0)
    stats.failed(0, "x" * 500, 0.0)
    assert by_name(stats)["10.0.0.1:80"].last_error == "x" * ERROR_BYTES


def test_no_error_reads_as_none():
    stats = ProxyStats(LABELS, workers=1, clock=Clock())
    up = by_name(stats)["10.0.0.1:80"]
    assert up.last_error == "" and up.last_error_age is None and up.mean_latency is None


def test_a_failure_after_the_response_head_is_not_a_second_request():
    stats = ProxyStats(LABELS, workers=1, clock=Clock())
    stats.worker_started(0)
    stats.responded(0, 0.01)
    stats.failed(0, "receive: reset in the middle of the body", 0.0, responded=True)
    up = by_name(stats)["10.0.0.1:80"]
    assert (up.requests, up.responses, up.failures) == (1, 1, 1)


def test_a_replacement_worker_keeps_totals_but_not_connections_or_offline_marks():
    clock = Clock()
    stats = ProxyStats(LABELS, workers=2, clock=clock)

    def work(stats: ProxyStats, index: int) -> None:
        stats.opened(0)
        stats.responded(0, 0.001)
        stats.failed(0, "connect timed out", clock.now + 60)
        # Died in the middle of writing an error: the sequence number is left odd.
        stats.shared.slots[stats.row + ERROR_SEQ] += 1

    in_children(stats, work)
    before = by_name(stats)["10.0.0.1:80"]
    assert before.active == 2 and before.offline_workers == 2 and before.state == "offline"
    assert before.last_error == ""            # both rows are mid-write
    stats.worker_started(0)                   # worker 0 is replaced
    after = by_name(stats)["10.0.0.1:80"]
    assert (after.requests, after.failures) == (4, 2)
    assert after.active == 1
    assert after.offline_workers == 1 and after.state == "partly offline"
    assert after.last_error == "connect timed out"


def test_offline_state_and_time_left():
    clock = Clock()
    stats = ProxyStats(LABELS, workers=1, clock=clock)
    stats.worker_started(0)
    stats.failed(0, "connect: Connection refused", clock.now + 30)
    clock.now += 10
    up = by_name(stats)["10.0.0.1:80"]
    assert up.state == "offline" and up.offline_for == pytest.approx(20.0)
    clock.now += 21
    assert by_name(stats)["10.0.0.1:80"].state == "up"


# -- the latency histogram -------------------------------------------------------------------
def test_latency_buckets_are_cumulative_and_end_with_the_total():
    stats = ProxyStats(LABELS, workers=1, clock=Clock())
    stats.worker_started(0)
    for latency in (0.001, 0.005, 0.0051, 0.3, 99.0):
        stats.responded(0, latency)
    counts = by_name(stats)["10.0.0.1:80"].latency_counts
    bounds = dict(zip([*LATENCY_BUCKETS, "+Inf"], counts))
    assert bounds[0.005] == 2                 # a bound includes its own value
    assert bounds[0.01] == 3
    assert bounds[0.25] == 3 and bounds[0.5] == 4
    assert bounds[10.0] == 4 and bounds["+Inf"] == 5
    assert counts == sorted(counts)


def test_responses_count_by_status_class_and_bytes_each_way_across_workers():
    stats = ProxyStats(LABELS, workers=2, clock=Clock())

    def work(stats: ProxyStats, index: int) -> None:
        for status in (101, 200, 204, 304, 404, 500, 503, 999):
            stats.responded(0, 0.001, status)
        tally = stats.tallies[0]
        tally.bytes_in += 1000 + index
        tally.bytes_out += 300
        stats.publish()
        tally.bytes_out += 20                 # a body still streaming: no response yet

    in_children(stats, work)
    up = by_name(stats)["10.0.0.1:80"]
    assert up.status_classes == [2, 4, 2, 2, 6]   # a status above 599 counts as 5xx
    assert (up.bytes_in, up.bytes_out) == (2001, 640)
    assert sum(up.status_classes) == up.responses == 16


def test_a_quantile_of_an_upstream_comes_from_its_histogram():
    stats = ProxyStats(LABELS, workers=1, clock=Clock())
    stats.worker_started(0)
    assert by_name(stats)["10.0.0.1:80"].latency_quantile(0.5) is None
    for latency in [0.03] * 99 + [0.9]:
        stats.responded(0, latency)
    up = by_name(stats)["10.0.0.1:80"]
    assert up.latency_quantile(0.5) == pytest.approx(0.025 + 0.005 * 50 / 99)
    assert up.latency_quantile(0.99) == pytest.approx(0.03)
    assert up.latency_quantile(1.0) == pytest.approx(1.0)   # the bound above 0.9


def test_the_quantiles_are_those_of_the_last_minute_and_the_histogram_is_since_the_start():
    clock = Clock()
    stats = ProxyStats(LABELS, workers=2, clock=clock)

    def slow_then_fast(stats: ProxyStats, index: int) -> None:
        for latency in [0.9] * 50:
            stats.responded(0, latency)
        stats.publish()
        clock.now += 45                       # still within the minute: both count
        for latency in [0.003] * 50:
            stats.responded(0, latency)

    in_children(stats, slow_then_fast)
    clock.now += 45
    up = by_name(stats)["10.0.0.1:80"]
    assert 0.8 < up.latency_quantile(0.99) <= 1.0    # the bucket of 0.9
    assert up.latency_quantile(0.25) < 0.005
    # Past 70 s the slow ones have left the window; the histogram keeps them.
    clock.now += 30
    up = by_name(stats)["10.0.0.1:80"]
    assert up.latency_quantile(0.99) < 0.005
    assert up.latency_counts[-1] == up.responses == 200
    assert up.recent_latency_counts[-1] == 100
    clock.now += 60
    assert by_name(stats)["10.0.0.1:80"].latency_quantile(0.5) is None


# -- time in the current state ---------------------------------------------------------------
def test_time_up_counts_from_the_start_then_from_the_end_of_an_offline_time():
    clock = Clock(100.0)
    stats = ProxyStats(LABELS, workers=1, clock=clock)
    stats.worker_started(0)
    clock.now = 112.0
    assert by_name(stats)["10.0.0.1:80"].state_age == pytest.approx(12.0)
    stats.failed(0, "connect: Connection refused", clock.now + 30)
    clock.now = 120.0
    up = by_name(stats)["10.0.0.1:80"]
    assert up.state == "offline" and up.state_age == pytest.approx(8.0)
    clock.now = 150.0                         # the offline time ran out at 142
    up = by_name(stats)["10.0.0.1:80"]
    assert up.state == "up" and up.state_age == pytest.approx(8.0)
    stats.failed(0, "read timed out", 0.0)    # a failure that does not take it offline
    assert by_name(stats)["10.0.0.1:80"].state_age == pytest.approx(8.0)


def test_a_server_back_before_its_time_is_up_since_then():
    clock = Clock(100.0)
    stats = ProxyStats(LABELS, workers=1, clock=clock)
    stats.worker_started(0)
    stats.offline(0, 160.0)
    clock.now = 110.0
    stats.offline(0, 0.0)                     # it answered (panic mode tried it)
    clock.now = 115.5
    assert by_name(stats)["10.0.0.1:80"].state_age == pytest.approx(5.5)


def test_partly_offline_counts_from_the_latest_worker_to_take_it_offline():
    clock = Clock(1000.0)
    stats = ProxyStats(LABELS, workers=3, clock=clock)

    def work(stats: ProxyStats, index: int) -> None:
        if index:
            clock.now = 1000.0 + 10 * index
            stats.offline(0, 2000.0)

    in_children(stats, work)
    clock.now = 1025.0
    up = by_name(stats)["10.0.0.1:80"]
    assert up.state == "partly offline" and up.state_age == pytest.approx(5.0)


def test_the_health_checks_verdict_age_counts_when_it_changed_later():
    clock = Clock(100.0)
    stats = ProxyStats(LABELS, workers=1, clock=clock)
    stats.worker_started(0)
    clock.now = 200.0
    up = by_name(stats)["10.0.0.1:80"]
    up.check = SimpleNamespace(state="up", state_age=30.0)
    assert up.state_age == 30.0
    up.check = SimpleNamespace(state="down", state_age=7.0)
    assert up.state == "down" and up.state_age == 7.0


# -- the per-second ring ---------------------------------------------------------------------
def test_the_ring_counts_each_completed_second_oldest_first():
    clock = Clock(5000.0)
    stats = ProxyStats(LABELS, workers=1, clock=clock)
    stats.worker_started(0)
    for second, count in ((5000, 3), (5001, 1), (5003, 4)):
        clock.now = second + 0.5
        for _ in range(count):
            stats.responded(0, 0.001)
        if second != 5003:
            stats.publish()                   # counts land in the second they are published
    stats.failed(0, "read timed out", 0.0)    # in 5003 too
    stats.publish()
    clock.now = 5004.1
    up = by_name(stats)["10.0.0.1:80"]
    assert len(up.requests_per_second) == HISTORY_SECONDS
    assert up.requests_per_second[-4:] == [3, 1, 0, 5]
    assert up.failures_per_second[-4:] == [0, 0, 0, 1]
    assert sum(up.requests_per_second) == 9
    assert up.responses_per_second[-4:] == [3, 1, 0, 4]
    assert up.latency_per_second[-4:] == pytest.approx([0.003, 0.001, 0, 0.004])


def test_the_traffic_of_every_upstream_is_summed_in_ten_second_intervals():
    clock = Clock(20_000.0)                  # interval 2000
    stats = ProxyStats(LABELS, workers=2, clock=clock)

    def work(stats: ProxyStats, index: int) -> None:
        for second, slot, status in ((20_001.0, 0, 200), (20_009.9, 1, 502),
                                     (20_012.0, 0, 200), (20_035.0, 1, 200)):
            clock.now = second
            stats.responded(slot, 0.002 * (index + 1), status)
            stats.publish()
        stats.failed(0, "read timed out", 0.0)    # in interval 2003 too
        stats.publish()

    in_children(stats, work)
    clock.now = 20_040.0                     # interval 2004 is counting: not shown
    traffic = stats.traffic()
    assert traffic.interval == INTERVAL_SECONDS and len(traffic.requests) == INTERVALS
    assert traffic.requests[-4:] == [4, 2, 0, 4]
    assert traffic.responses[-4:] == [4, 2, 0, 2]
    assert traffic.errors[-4:] == [2, 0, 0, 0]
    assert traffic.failures[-4:] == [0, 0, 0, 2]
    assert traffic.mean_latency[-4:] == pytest.approx([0.003, 0.003, None, 0.003])
    clock.now = 20_000.0 + INTERVAL_SECONDS * (INTERVALS + 1)   # interval 2000 is gone
    assert sum(stats.traffic().requests) == 6


def test_the_ring_counts_5xx_responses_each_second():
    clock = Clock(6000.5)
    stats = ProxyStats(LABELS, workers=1, clock=clock)
    stats.worker_started(0)
    for status in (200, 502, 503, 404):
        stats.responded(0, 0.001, status)
    stats.publish()
    clock.now = 6001.5
    stats.responded(0, 0.001, 500)
    stats.publish()
    clock.now = 6002.0
    assert by_name(stats)["10.0.0.1:80"].errors_per_second[-2:] == [2, 1]


def test_the_current_second_is_not_shown_until_it_is_complete():
    clock = Clock(7000.2)
    stats = ProxyStats(LABELS, workers=1, clock=clock)
    stats.worker_started(0)
    stats.responded(0, 0.001)
    assert sum(by_name(stats)["10.0.0.1:80"].requests_per_second) == 0
    clock.now = 7001.0
    assert by_name(stats)["10.0.0.1:80"].requests_per_second[-1] == 1


def test_seconds_older_than_the_history_drop_out_and_buckets_are_reused():
    clock = Clock(100.0)
    stats = ProxyStats(LABELS, workers=1, clock=clock)
    stats.worker_started(0)
    stats.responded(0, 0.001)                 # second 100
    stats.publish()
    clock.now = 100 + HISTORY_SECONDS + 0.5   # second 100 is now the oldest shown
    assert by_name(stats)["10.0.0.1:80"].requests_per_second[0] == 1
    clock.now += 1                            # and now it is gone
    assert sum(by_name(stats)["10.0.0.1:80"].requests_per_second) == 0
    for _ in range(2):                        # a later second takes its bucket over
        stats.responded(0, 0.001)
    stats.publish()
    clock.now += 1
    assert by_name(stats)["10.0.0.1:80"].requests_per_second[-1] == 2
    assert sum(by_name(stats)["10.0.0.1:80"].requests_per_second) == 2


def test_the_ring_sums_the_workers_second_by_second():
    clock = Clock(3000.5)
    stats = ProxyStats(LABELS, workers=2, clock=clock)

    def work(stats: ProxyStats, index: int) -> None:
        for _ in range(index + 1):
            stats.responded(1, 0.001)

    in_children(stats, work)
    clock.now += 1
    assert by_name(stats)["10.0.0.2:80"].requests_per_second[-1] == 3


# -- Prometheus ------------------------------------------------------------------------------
def report_of(stats: ProxyStats) -> StatusReport:
    stats.publish()
    snapshot = stats.snapshot()
    return StatusReport("/proxy-status", 1.7e9, stats.workers,
                        [EntryStatus("e.conf:3", ["^/api/", "\\.php$"], "RoundRobin", snapshot,
                                     location="e.conf:3")])


def samples(text: str) -> dict:
    """{(sample name, frozenset of labels): value} of a Prometheus text."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


def test_prometheus_text_parses_back_to_the_figures():
    clock = Clock()
    stats = ProxyStats(LABELS, workers=2, clock=clock)

    def work(stats: ProxyStats, index: int) -> None:
        stats.responded(0, 0.02)
        stats.responded(0, 3.0)
        stats.opened(0)
        stats.failed(0, "connect: Connection refused", clock.now + 60 if index else 0.0)

    in_children(stats, work)
    text = render_prometheus(report_of(stats)).decode()
    found = samples(text)
    first = frozenset({("entry", "e.conf:3"), ("upstream", "10.0.0.1:80")})
    second = frozenset({("entry", "e.conf:3"), ("upstream", "10.0.0.2:80")})
    assert found["monkey_proxy_upstream_requests_total", first] == 6
    assert found["monkey_proxy_upstream_failures_total", first] == 2
    assert found["monkey_proxy_upstream_active_connections", first] == 2
    assert found["monkey_proxy_upstream_up", first] == 0
    assert found["monkey_proxy_upstream_offline_workers", first] == 1
    assert found["monkey_proxy_upstream_up", second] == 1
    assert found["monkey_proxy_upstream_backup", second] == 1
    assert found["monkey_proxy_upstream_response_seconds_count", first] == 4
    assert found["monkey_proxy_upstream_response_seconds_sum", first] == pytest.approx(6.04)
    assert found["monkey_proxy_upstream_response_seconds_bucket", first | {("le", "0.025")}] == 2
    assert found["monkey_proxy_upstream_response_seconds_bucket", first | {("le", "2.5")}] == 2
    assert found["monkey_proxy_upstream_response_seconds_bucket", first | {("le", "+Inf")}] == 4
    assert found["monkey_proxy_workers", frozenset()] == 2
    info = frozenset({("entry", "e.conf:3"), ("match", "^/api/ \\.php$"),
                      ("balancer", "RoundRobin"), ("location", "e.conf:3")})
    assert found["monkey_proxy_entry_info", info] == 1


def test_prometheus_label_values_are_escaped_by_the_library():
    stats = ProxyStats([('a"b\\c\nd', "h:1", False)], workers=1, clock=Clock())
    report = StatusReport("/s", 0.0, 1, [EntryStatus('a"b\\c\nd', [], "", stats.snapshot())])
    found = samples(render_prometheus(report).decode())
    key = frozenset({("entry", 'a"b\\c\nd'), ("upstream", "h:1")})
    assert found["monkey_proxy_upstream_requests_total", key] == 0
