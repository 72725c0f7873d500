"""The statistics in the Prometheus text format, written by ``prometheus_client``.

A custom collector turns one report into metric families; each scrape renders them
through a private registry, so nothing is added to the library's global one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from .stats import LATENCY_BUCKETS

if TYPE_CHECKING:
    from .status_page import StatusReport

# The format generate_latest() writes (the text format 0.0.4).
PROMETHEUS_CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
LABELS = ["entry", "upstream"]


class ReportCollector:
    """Metric families of one StatusReport."""

    def __init__(self, report: StatusReport) -> None:
        self.report = report

    def collect(self) -> Iterator[Metric]:
        report = self.report
        workers = GaugeMetricFamily(
            "monkey_proxy_workers", "Worker processes whose figures are summed.")
        workers.add_metric([], report.workers)
        since = GaugeMetricFamily(
            "monkey_proxy_statistics_start_time_seconds",
            "Unix time the counters started from zero (server start or reload).")
        since.add_metric([], report.since)
        info = InfoMetricFamily(
            "monkey_proxy_entry", "A proxy entry: its Match rules and load balancer.",
            labels=["entry"])
        requests = CounterMetricFamily(
            "monkey_proxy_upstream_requests",
            "Requests sent to the upstream that got a response or failed before one.",
            labels=LABELS)
        failures = CounterMetricFamily(
            "monkey_proxy_upstream_failures",
            "Failed attempts: connect, send, timeout, or a response broken off.",
            labels=LABELS)
        active = GaugeMetricFamily(
            "monkey_proxy_upstream_active_connections",
            "Requests and tunnels in progress with the upstream.", labels=LABELS)
        up = GaugeMetricFamily(
            "monkey_proxy_upstream_up",
            "1 if no worker holds the upstream offline after failures, else 0.",
            labels=LABELS)
        offline = GaugeMetricFamily(
            "monkey_proxy_upstream_offline_workers",
            "Workers holding the upstream offline after AttemptsCount failures.",
            labels=LABELS)
        backup = GaugeMetricFamily(
            "monkey_proxy_upstream_backup",
            "1 for a backup server, tried after every primary one.", labels=LABELS)
        latency = HistogramMetricFamily(
            "monkey_proxy_upstream_response_seconds",
            "Seconds from the start of an attempt (connect) to the response head.",
            labels=LABELS)
        bounds = [f"{bound:g}" for bound in LATENCY_BUCKETS] + ["+Inf"]
        for entry in report.entries:
            info.add_metric([entry.label], {"match": " ".join(entry.match),
                                            "balancer": entry.balancer})
            for upstream in entry.upstreams:
                labels = [entry.label, upstream.name]
                requests.add_metric(labels, upstream.requests)
                failures.add_metric(labels, upstream.failures)
                active.add_metric(labels, upstream.active)
                up.add_metric(labels, 0 if upstream.offline_workers else 1)
                offline.add_metric(labels, upstream.offline_workers)
                backup.add_metric(labels, 1 if upstream.backup else 0)
                latency.add_metric(labels, list(zip(bounds, upstream.latency_counts)),
                                   upstream.latency_sum)
        yield from (workers, since, info, requests, failures, active, up, offline, backup,
                    latency)


def render_prometheus(report: StatusReport) -> bytes:
    """The report in the Prometheus text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReportCollector(report))
    return generate_latest(registry)
