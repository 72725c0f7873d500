"""The JSON document and the Prometheus text show the same figures: each JSON figure of
an entry and of an upstream is checked against its metric. The page's line on an entry's
load says what they say."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monkey_py_plugins.proxy_reverse.forwarding.health_board import BAD_STATUS, HealthBoard
from monkey_py_plugins.proxy_reverse.stats import ProxyStats
from monkey_py_plugins.proxy_reverse.status.html import render_html
from monkey_py_plugins.proxy_reverse.status.json import render_json
from monkey_py_plugins.proxy_reverse.status.prometheus import render_prometheus
from monkey_py_plugins.proxy_reverse.status.report import EntryStatus, StatusReport

# JSON path under an upstream -> its metric
UPSTREAM_FIGURES = {
    ("requests",): "monkey_proxy_upstream_requests_total",
    ("failures",): "monkey_proxy_upstream_failures_total",
    ("active",): "monkey_proxy_upstream_active_connections",
    ("offline_workers",): "monkey_proxy_upstream_offline_workers",
    ("weight",): "monkey_proxy_upstream_weight",
    ("effective_weight",): "monkey_proxy_upstream_effective_weight",
    ("health_check", "checks"): "monkey_proxy_upstream_health_checks_total",
    ("health_check", "failures"): "monkey_proxy_upstream_health_check_failures_total",
    ("health_check", "state_age"): "monkey_proxy_upstream_health_check_state_seconds",
    ("health_check", "last_status"): "monkey_proxy_upstream_health_check_last_status",
    ("responses",): "monkey_proxy_upstream_response_seconds_count",
    ("bytes_in",): "monkey_proxy_upstream_received_bytes_total",
    ("bytes_out",): "monkey_proxy_upstream_sent_bytes_total",
    ("state_age",): "monkey_proxy_upstream_state_seconds",
}
# JSON path under the summary -> its metric
SUMMARY_FIGURES = {
    "servers": "monkey_proxy_servers",
    "servers_down": "monkey_proxy_servers_down",
    "servers_partly_offline": "monkey_proxy_servers_partly_offline",
    "request_rate": "monkey_proxy_requests_per_second",
    "error_rate": "monkey_proxy_responses_5xx_per_second",
    "error_ratio": "monkey_proxy_responses_5xx_ratio",
    "failure_rate": "monkey_proxy_failures_per_second",
}
# JSON path under an entry -> its metric
ENTRY_FIGURES = {
    ("limits", "max_connections"): "monkey_proxy_entry_max_connections",
    ("limits", "queue_size"): "monkey_proxy_entry_queue_size",
    ("queue", "waiting"): "monkey_proxy_entry_queue_waiting",
    ("queue", "full"): "monkey_proxy_entry_queue_full_total",
    ("queue", "timeouts"): "monkey_proxy_entry_queue_timeouts_total",
    ("retries", "retries"): "monkey_proxy_entry_retries_total",
    ("retries", "denied"): "monkey_proxy_entry_retries_denied_total",
    ("panic_workers",): "monkey_proxy_entry_panic_workers",
}


def report() -> StatusReport:
    """An entry with limits, queue and retry figures, a checked server that is down
    and warming, and a backup."""
    clock = SimpleNamespace(now=1000.0)
    stats = ProxyStats([("api", "a:80", False), ("api", "b:80", True)], workers=1,
                       clock=lambda: clock.now)
    stats.worker_started(0)
    for status, latency in ((200, 0.01), (304, 0.02), (502, 0.2)):
        stats.responded(0, latency, status)
    stats.tallies[0].bytes_in, stats.tallies[0].bytes_out = 4096, 512
    stats.failed(0, "read timed out", 0.0)
    stats.tallies[0].weight_share = 0.3
    stats.tallies[1].active = 2
    tally = stats.entry_tallies[0]
    tally.waiting, tally.queue_full, tally.queue_timeouts = 4, 5, 6
    tally.retries, tally.retries_denied, tally.panic = 7, 8, True
    stats.publish()
    clock.now = 1003.0
    now = clock.now
    board = HealthBoard([0], clock=lambda: now)
    for _ in range(3):
        board.record(0, BAD_STATUS, 500, 2, 3)
    upstreams = stats.snapshot()
    upstreams[0].weight, upstreams[0].check = 3, board.snapshot()[0]
    settings = SimpleNamespace(
        panic_threshold=50, slow_start=30.0, max_connections=10, queue_size=20,
        queue_timeout=5.0, retry_budget=20, retry_budget_min=3,
        retry_statuses=SimpleNamespace(text="502 503"),
        health_check=SimpleNamespace(path="/health", interval=5.0, timeout=2.0, rise=2,
                                     fall=3, status=SimpleNamespace(text="2xx 3xx")))
    return StatusReport("/s", 0.0, 1, [EntryStatus(
        "api", ["^/api/"], "RoundRobin", upstreams, name="api", location="p.conf:3",
        figures=stats.entry_snapshot()[0], settings=settings)])


def dig(document: dict, path: tuple):
    for key in path:
        document = document[key]
    return document


def test_json_and_prometheus_show_the_same_figures():
    status = report()
    document = json.loads(render_json(status))
    samples = {}
    for family in text_string_to_metric_families(render_prometheus(status).decode()):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    summary = document["summary"]
    assert summary["error_ratio"] is not None
    for key, metric in SUMMARY_FIGURES.items():
        # JSON rounds rates to 3 decimals (the ratio to 4).
        assert samples[metric, ()] == pytest.approx(summary[key], abs=5e-4), metric
    (entry,) = document["entries"]
    for path, metric in ENTRY_FIGURES.items():
        assert samples[metric, (("entry", "api"),)] == dig(entry, path), metric
    for row in entry["upstreams"]:
        labels = (("entry", "api"), ("upstream", row["upstream"]))
        for path, metric in UPSTREAM_FIGURES.items():
            if path[0] == "health_check" and row["health_check"] is None:
                assert (metric, labels) not in samples
                continue
            assert samples[metric, labels] == dig(row, path), (metric, row["upstream"])
        assert samples["monkey_proxy_upstream_up", labels] == (row["state"] == "up")
        for code, count in row["status_classes"].items():
            assert samples["monkey_proxy_upstream_responses_total",
                           tuple(sorted((*labels, ("code", code))))] == count
        for key, q in (("latency_p50_ms", "0.5"), ("latency_p99_ms", "0.99")):
            metric = ("monkey_proxy_upstream_response_quantile_seconds",
                      tuple(sorted((*labels, ("quantile", q)))))
            if row[key] is None:
                assert metric not in samples
            else:
                assert round(samples[metric] * 1000, 3) == row[key]
        for bound, count in row["latency_seconds"]["buckets"].items():
            assert samples["monkey_proxy_upstream_response_seconds_bucket",
                           (("entry", "api"), ("le", bound), ("upstream", row["upstream"]))
                           ] == count
    checked = entry["upstreams"][0]
    assert checked["state"] == "down" and checked["effective_weight"] == 0.9
    assert checked["status_classes"] == {"1xx": 0, "2xx": 1, "3xx": 1, "4xx": 0, "5xx": 1}
    assert (checked["bytes_in"], checked["bytes_out"]) == (4096, 512)
    assert summary["error_ratio"] == round(1 / 3, 4)
    assert samples["monkey_proxy_upstream_health_check_up",
                   (("entry", "api"), ("upstream", "a:80"))] == 0
    info = [labels for name, labels in samples if name == "monkey_proxy_entry_info"]
    assert dict(info[0]) == {
        "entry": "api", "location": entry["location"], "match": "^/api/",
        "balancer": entry["balancer"], "panic_threshold": "50", "slow_start": "30",
        "queue_timeout": "5", "retry_budget": "20", "retry_budget_min": "3",
        "retry_on_status": entry["limits"]["retry_on_status"],
        "health_check": entry["health_check"]["path"]}


def test_the_page_says_the_limits_retries_panic_and_statuses_retried():
    status = report()
    page = render_html(status).decode()
    assert ("<p>at most 10 connection(s) per server and worker, 4 request(s) waiting; "
            "5 refused (queue full), 6 timed out in the queue; 7 retries, 8 refused by the "
            "retry budget; <span class=\"offline\">panic mode in 1 worker(s)</span>; answers "
            "502 503 retried on the next server.</p>") in page
    # Without figures yet, or without RetryOnStatus, the line says what there is.
    entry = status.entries[0]
    entry.figures, entry.settings.retry_statuses = None, None
    assert "<p>at most 10 connection(s) per server and worker, 0 request(s) waiting.</p>" \
        in render_html(status).decode()
