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

from ..cache.figures import CacheFigures, StoreFigures
from ..latency import exported
from .fleet import fleet_metrics

if TYPE_CHECKING:
    from .report import StatusReport, Summary

# The format generate_latest() writes (the text format 0.0.4).
PROMETHEUS_CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
LABELS = ["entry", "upstream"]
QUANTILES = (0.5, 0.99)


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
        yield from (workers, since, *summary_metrics(report.summary),
                    *entry_metrics(report), *upstream_metrics(report))
        if report.cache_store is not None:
            yield from cache_metrics(
                [(entry.label, entry.cache) for entry in report.entries if entry.cache],
                report.cache_store)
        yield from fleet_metrics(report.fleet)


def summary_metrics(summary: Summary) -> Iterator[Metric]:
    """The page's summary: servers unavailable, and rates over the last seconds."""
    window = f"over the last {summary.window} completed seconds"
    figures = [
        ("servers", "Upstream servers of every entry.", summary.servers),
        ("servers_down", "Servers offline in every worker or held down by their health "
                         "check.", summary.servers_down),
        ("servers_partly_offline", "Servers offline in some workers only.",
         summary.servers_partly_offline),
        ("requests_per_second", f"Requests sent to upstreams per second, {window}.",
         summary.request_rate),
        ("responses_5xx_per_second", f"5xx responses of upstreams per second, {window}.",
         summary.error_rate),
        ("failures_per_second", f"Failed attempts per second, {window}.",
         summary.failure_rate),
        ("responses_5xx_ratio", f"The share of upstream responses that were 5xx, {window} "
                                "(absent without responses).", summary.error_ratio),
    ]
    for name, text, value in figures:
        if value is not None:
            family = GaugeMetricFamily(f"monkey_proxy_{name}", text)
            family.add_metric([], value)
            yield family


def entry_metrics(report: StatusReport) -> Iterator[Metric]:
    """Per entry: what it is (info), its limits, queue, retries and panic mode."""
    info = InfoMetricFamily(
        "monkey_proxy_entry", "A proxy entry: where it is, its Match rules, its load "
        "balancer, and the settings that bound its load.", labels=["entry"])
    gauges = {
        "max_connections": "MaxConnections: requests in progress per server and worker "
                           "(0: no limit).",
        "queue_size": "QueueSize: requests that may wait per worker for a server below "
                      "MaxConnections.",
        "queue_waiting": "Requests waiting now for a server below MaxConnections.",
        "panic_workers": "Workers in panic mode for the entry (too few servers online: "
                         "every server is used).",
    }
    counters = {
        "queue_full": "Requests answered 503 because the queue was full.",
        "queue_timeouts": "Requests answered 503 after waiting QueueTimeout in the queue.",
        "retries": "Attempts after a request's first one (failover).",
        "retries_denied": "Failovers refused by the retry budget (the error was answered).",
    }
    gauge = {name: GaugeMetricFamily(f"monkey_proxy_entry_{name}", text, labels=["entry"])
             for name, text in gauges.items()}
    counter = {name: CounterMetricFamily(f"monkey_proxy_entry_{name}", text,
                                         labels=["entry"])
               for name, text in counters.items()}
    for entry in report.entries:
        labels = [entry.label]
        settings, figures = entry.settings, entry.figures
        described = {"location": entry.location, "match": " ".join(entry.match),
                     "balancer": entry.balancer}
        if settings is not None:
            check = settings.health_check
            described.update(
                panic_threshold=str(settings.panic_threshold),
                slow_start=f"{settings.slow_start:g}",
                queue_timeout=f"{settings.queue_timeout:g}",
                retry_budget=str(settings.retry_budget),
                retry_budget_min=str(settings.retry_budget_min),
                retry_on_status="" if settings.retry_statuses is None
                else settings.retry_statuses.text,
                health_check="" if check is None else check.path)
            gauge["max_connections"].add_metric(labels, settings.max_connections)
            gauge["queue_size"].add_metric(labels, settings.queue_size)
        info.add_metric(labels, described)
        gauge["queue_waiting"].add_metric(labels, figures.waiting if figures else 0)
        gauge["panic_workers"].add_metric(labels, figures.panic_workers if figures else 0)
        counter["queue_full"].add_metric(labels, figures.queue_full if figures else 0)
        counter["queue_timeouts"].add_metric(labels, figures.queue_timeouts if figures else 0)
        counter["retries"].add_metric(labels, figures.retries if figures else 0)
        counter["retries_denied"].add_metric(labels, figures.retries_denied if figures else 0)
    yield from (info, *gauge.values(), *counter.values())


def upstream_metrics(report: StatusReport) -> Iterator[Metric]:
    """Per upstream: traffic, latency, health (passive and checked) and weight."""
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
        "1 if no worker holds the upstream offline after failures and its health check "
        "does not hold it down, else 0.", labels=LABELS)
    offline = GaugeMetricFamily(
        "monkey_proxy_upstream_offline_workers",
        "Workers holding the upstream offline after AttemptsCount failures.",
        labels=LABELS)
    backup = GaugeMetricFamily(
        "monkey_proxy_upstream_backup",
        "1 for a backup server, tried after every primary one.", labels=LABELS)
    weight = GaugeMetricFamily(
        "monkey_proxy_upstream_weight", "The weight=N of the server in ServerList.",
        labels=LABELS)
    effective = GaugeMetricFamily(
        "monkey_proxy_upstream_effective_weight",
        "The weight the balancer uses now, the lowest of any worker: 0 while offline, "
        "less than the weight during a slow start.", labels=LABELS)
    check_up = GaugeMetricFamily(
        "monkey_proxy_upstream_health_check_up",
        "1 while the active health check passes (or has not failed FALL times yet), "
        "0 while it holds the server down. Only servers with a HealthCheck.",
        labels=LABELS)
    check_age = GaugeMetricFamily(
        "monkey_proxy_upstream_health_check_state_seconds",
        "Seconds since the health check's verdict last changed.", labels=LABELS)
    checks = CounterMetricFamily(
        "monkey_proxy_upstream_health_checks", "Health checks made.", labels=LABELS)
    check_failures = CounterMetricFamily(
        "monkey_proxy_upstream_health_check_failures", "Health checks that failed.",
        labels=LABELS)
    check_status = GaugeMetricFamily(
        "monkey_proxy_upstream_health_check_last_status",
        "The HTTP status of the last health check that got an answer.", labels=LABELS)
    latency = HistogramMetricFamily(
        "monkey_proxy_upstream_response_seconds",
        "Seconds from the start of an attempt (connect) to the response head.",
        labels=LABELS)
    quantiles = GaugeMetricFamily(
        "monkey_proxy_upstream_response_quantile_seconds",
        "Quantiles of the response seconds over the last minute (60 to 70 s), read "
        "from a histogram of ten buckets a decade.", labels=[*LABELS, "quantile"])
    responses = CounterMetricFamily(
        "monkey_proxy_upstream_responses",
        "Response heads from the upstream by status class (1xx to 5xx).",
        labels=[*LABELS, "code"])
    received = CounterMetricFamily(
        "monkey_proxy_upstream_received_bytes",
        "Bytes received from the upstream (response heads and bodies).", labels=LABELS)
    sent = CounterMetricFamily(
        "monkey_proxy_upstream_sent_bytes",
        "Bytes sent to the upstream (request heads and bodies).", labels=LABELS)
    state_age = GaugeMetricFamily(
        "monkey_proxy_upstream_state_seconds",
        "Seconds the upstream has been in its current state (up, offline, partly "
        "offline, down).", labels=LABELS)
    for entry in report.entries:
        for upstream in entry.upstreams:
            labels = [entry.label, upstream.name]
            requests.add_metric(labels, upstream.requests)
            failures.add_metric(labels, upstream.failures)
            active.add_metric(labels, upstream.active)
            up.add_metric(labels, 1 if upstream.state == "up" else 0)
            offline.add_metric(labels, upstream.offline_workers)
            backup.add_metric(labels, 1 if upstream.backup else 0)
            weight.add_metric(labels, upstream.weight)
            effective.add_metric(labels, round(upstream.weight * upstream.weight_share, 3))
            check = upstream.check
            if check is not None:
                check_up.add_metric(labels, 0 if check.state == "down" else 1)
                if check.state_age is not None:
                    check_age.add_metric(labels, check.state_age)
                checks.add_metric(labels, check.checks)
                check_failures.add_metric(labels, check.failures)
                if check.last_status is not None:
                    check_status.add_metric(labels, check.last_status)
            latency.add_metric(labels, exported(upstream.latency_counts),
                               upstream.latency_sum)
            for q in QUANTILES:
                value = upstream.latency_quantile(q)
                if value is not None:
                    quantiles.add_metric([*labels, f"{q:g}"], value)
            for number, count in enumerate(upstream.status_classes, 1):
                responses.add_metric([*labels, f"{number}xx"], count)
            received.add_metric(labels, upstream.bytes_in)
            sent.add_metric(labels, upstream.bytes_out)
            if upstream.state_age is not None:
                state_age.add_metric(labels, upstream.state_age)
    yield from (requests, failures, active, up, offline, backup, weight, effective,
                check_up, check_age, checks, check_failures, check_status, latency,
                quantiles, responses, received, sent, state_age)


def cache_metrics(entries: list[tuple[str, CacheFigures]], store: StoreFigures
                  ) -> Iterator[Metric]:
    """The cache's families: answers by result and counters per entry, the store's size."""
    answers = CounterMetricFamily(
        "monkey_proxy_cache_responses",
        "Responses of cache-enabled entries by result: hit (fresh from the cache), "
        "stale (stale from the cache), miss (forwarded upstream).",
        labels=["entry", "result"])
    counters = {
        "revalidated": "Revalidations the upstream answered 304, served from the cache.",
        "stored": "Responses stored in the cache.",
        "purged": "Stored responses removed by PURGE.",
        "collapsed": "Requests that waited for another request's fetch (collapsing).",
    }
    families = {name: CounterMetricFamily(f"monkey_proxy_cache_{name}", text,
                                          labels=["entry"])
                for name, text in counters.items()}
    for label, figures in entries:
        answers.add_metric([label, "hit"], figures.hits)
        answers.add_metric([label, "stale"], figures.stale)
        answers.add_metric([label, "miss"], figures.misses)
        for name, family in families.items():
            family.add_metric([label], getattr(figures, name))
    size = GaugeMetricFamily("monkey_proxy_cache_store_bytes",
                             "Bytes the cache's store holds (all workers' memory stores, "
                             "or the disk directory).", labels=["store"])
    size.add_metric([store.kind], store.bytes)
    limit = GaugeMetricFamily("monkey_proxy_cache_store_max_bytes",
                              "CacheMaxSize in bytes (per worker for the memory store).",
                              labels=["store"])
    limit.add_metric([store.kind], store.max_bytes)
    count = GaugeMetricFamily("monkey_proxy_cache_store_entries",
                              "Responses the store holds.", labels=["store"])
    count.add_metric([store.kind], store.entries)
    evictions = CounterMetricFamily("monkey_proxy_cache_store_evictions",
                                    "Responses evicted to stay within CacheMaxSize.",
                                    labels=["store"])
    evictions.add_metric([store.kind], store.evictions)
    damaged = CounterMetricFamily("monkey_proxy_cache_store_damaged",
                                  "Stored bodies that failed their checksum and were removed.",
                                  labels=["store"])
    damaged.add_metric([store.kind], store.damaged)
    errors = CounterMetricFamily("monkey_proxy_cache_store_write_errors",
                                 "Writes to the disk store that failed, by cause: no-space, "
                                 "read-only, other.", labels=["store", "cause"])
    for cause, failed in store.write_errors.items():
        errors.add_metric([store.kind, cause], failed)
    yield from (answers, *families.values(), size, limit, count, evictions, damaged, errors)


def render_prometheus(report: StatusReport) -> bytes:
    """The report in the Prometheus text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReportCollector(report))
    return generate_latest(registry)
