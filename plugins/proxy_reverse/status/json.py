"""The statistics as a JSON document (docs/proxy_reverse.md describes its fields)."""

from __future__ import annotations

import json
from dataclasses import asdict

from ..cache.figures import COUNTERS
from ..latency import exported
from ..history import Traffic
from ..snapshots import UpstreamSnapshot
from .fleet import fleet_json
from .report import EntryStatus, StatusReport, Summary


def render_json(report: StatusReport) -> bytes:
    """The report as a JSON document (docs/proxy_reverse.md describes its fields)."""
    document = {
        "since": report.since,
        "workers": report.workers,
        "summary": _summary(report.summary),
        "traffic": _traffic(report.traffic),
        "entries": [_entry(entry) for entry in report.entries],
        "cache_store": None if report.cache_store is None else asdict(report.cache_store),
        "fleet": fleet_json(report.fleet),
    }
    return json.dumps(document, indent=1).encode()


def _summary(summary: Summary) -> dict:
    ratio = summary.error_ratio
    return {
        "servers": summary.servers,
        "servers_down": summary.servers_down,
        "servers_partly_offline": summary.servers_partly_offline,
        "window_seconds": summary.window,
        "request_rate": round(summary.request_rate, 3),
        "error_rate": round(summary.error_rate, 3),
        "error_ratio": None if ratio is None else round(ratio, 4),
        "failure_rate": round(summary.failure_rate, 3),
        "last_minute": _traffic(summary.last_minute),
    }


def _traffic(traffic: Traffic) -> dict:
    return {
        "interval_seconds": traffic.interval,
        "requests": traffic.requests,
        "failures": traffic.failures,
        "errors": traffic.errors,
        "responses": traffic.responses,
        "latency_ms": [_ms(mean) for mean in traffic.mean_latency],
    }


def _entry(entry: EntryStatus) -> dict:
    settings = entry.settings
    figures = entry.figures
    check = None if settings is None else settings.health_check
    return {
        "entry": entry.label,
        "name": entry.name,
        "location": entry.location,
        "match": entry.match,
        "balancer": entry.balancer,
        "panic_workers": figures.panic_workers if figures else 0,
        "limits": None if settings is None else {
            "panic_threshold": settings.panic_threshold,
            "slow_start": settings.slow_start,
            "max_connections": settings.max_connections,
            "queue_size": settings.queue_size,
            "queue_timeout": settings.queue_timeout,
            "retry_budget": settings.retry_budget,
            "retry_budget_min": settings.retry_budget_min,
            "retry_on_status": None if settings.retry_statuses is None
            else settings.retry_statuses.text,
        },
        "queue": {
            "waiting": figures.waiting if figures else 0,
            "full": figures.queue_full if figures else 0,
            "timeouts": figures.queue_timeouts if figures else 0,
        },
        "retries": {
            "retries": figures.retries if figures else 0,
            "denied": figures.retries_denied if figures else 0,
        },
        "health_check": None if check is None else {
            "path": check.path, "interval": check.interval, "timeout": check.timeout,
            "rise": check.rise, "fall": check.fall, "status": check.status.text,
        },
        "upstreams": [_upstream(up) for up in entry.upstreams],
        "cache": None if entry.cache is None else {
            **{name: getattr(entry.cache, name) for name in COUNTERS},
            "hit_ratio": (None if entry.cache.hit_ratio is None
                          else round(entry.cache.hit_ratio, 4)),
        },
    }


def _upstream(up: UpstreamSnapshot) -> dict:
    check = up.check
    return {
        "upstream": up.name,
        "backup": up.backup,
        "state": up.state,
        "state_age": _rounded(up.state_age),
        "offline_workers": up.offline_workers,
        "offline_for": round(up.offline_for, 3),
        "weight": up.weight,
        "effective_weight": round(up.weight * up.weight_share, 3),
        "active": up.active,
        "requests": up.requests,
        "responses": up.responses,
        "failures": up.failures,
        "status_classes": {f"{number}xx": count
                           for number, count in enumerate(up.status_classes, 1)},
        "bytes_in": up.bytes_in,
        "bytes_out": up.bytes_out,
        "mean_latency_ms": _ms(up.mean_latency),
        "latency_p50_ms": _ms(up.latency_quantile(0.5)),
        "latency_p99_ms": _ms(up.latency_quantile(0.99)),
        "latency_seconds": {
            "sum": round(up.latency_sum, 6),
            "buckets": dict(exported(up.latency_counts)),
        },
        "last_error": up.last_error or None,
        "last_error_age": (None if up.last_error_age is None
                           else round(up.last_error_age, 3)),
        "health_check": None if check is None else {
            "state": check.state,
            "state_age": _rounded(check.state_age),
            "last_result": check.last_result,
            "last_status": check.last_status,
            "last_check_age": _rounded(check.last_check_age),
            "checks": check.checks,
            "failures": check.failures,
        },
        "requests_per_second": up.requests_per_second,
        "failures_per_second": up.failures_per_second,
        "errors_per_second": up.errors_per_second,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)
