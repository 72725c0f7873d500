"""The statistics at ``StatisticsURL``: HTML for people, JSON and Prometheus for machines.

The URLs, for ``StatisticsURL /proxy-status``::

    /proxy-status                     HTML (also ?format=html)
    /proxy-status.json                JSON (also /proxy-status?format=json)
    /proxy-status/metrics             Prometheus text (also /proxy-status?format=prometheus)

Only clients whose address is in ``StatisticsAllow`` (loopback by default) get them.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass
from urllib.parse import parse_qs

from ..cache.figures import COUNTERS, CacheFigures, StoreFigures
from ..stats import LATENCY_BUCKETS, UpstreamSnapshot
from .html import render_html
from .prometheus import PROMETHEUS_CONTENT_TYPE, render_prometheus

FORMATS = ("html", "json", "prometheus")
CONTENT_TYPES = {
    "html": b"text/html; charset=utf-8",
    "json": b"application/json",
    "prometheus": PROMETHEUS_CONTENT_TYPE,
}


@dataclass
class EntryStatus:
    """One ``[PROXY_ENTRY]`` and its upstreams' figures."""

    label: str
    match: list[str]
    balancer: str
    upstreams: list[UpstreamSnapshot]
    # The entry's cache figures; None when it caches on no site.
    cache: CacheFigures | None = None


@dataclass
class StatusReport:
    """What every format shows: the entries, and since when the figures count."""

    url: str
    since: float
    workers: int
    entries: list[EntryStatus]
    # The cache's store; None when no entry caches.
    cache_store: StoreFigures | None = None


def build_report(state) -> StatusReport:
    """Group the upstreams' shared figures by entry, in configuration order."""
    settings = state.settings
    described = {}
    for entry in [*settings.entries, *(e for own in settings.site_entries.values()
                                       for e in own)]:
        described[str(entry.location)] = entry
    cache = state.cache
    figures = {} if cache is None else {found.entry: found for found in cache.stats.entries()}
    any_site = cache is not None and any(settings.site_cache.values())
    entries: dict[str, EntryStatus] = {}
    for upstream in state.stats.snapshot():
        found = entries.get(upstream.entry)
        if found is None:
            entry = described.get(upstream.entry)
            caches = cache is not None and entry is not None and (entry.cache or any_site)
            found = entries[upstream.entry] = EntryStatus(
                upstream.entry,
                [pattern.pattern for pattern in entry.match] if entry else [],
                entry.balancer if entry else "",
                [],
                figures.get(upstream.entry) if caches else None,
            )
        found.upstreams.append(upstream)
    return StatusReport(settings.statistics_url, state.stats.since, state.stats.workers,
                        list(entries.values()),
                        None if cache is None else cache.stats.store())


def render_json(report: StatusReport) -> bytes:
    """The report as a JSON document (docs/proxy_reverse.md describes its fields)."""
    bounds = [f"{bound:g}" for bound in LATENCY_BUCKETS] + ["+Inf"]
    document = {
        "since": report.since,
        "workers": report.workers,
        "entries": [{
            "entry": entry.label,
            "match": entry.match,
            "balancer": entry.balancer,
            "upstreams": [{
                "upstream": up.name,
                "backup": up.backup,
                "state": up.state,
                "offline_workers": up.offline_workers,
                "offline_for": round(up.offline_for, 3),
                "active": up.active,
                "requests": up.requests,
                "responses": up.responses,
                "failures": up.failures,
                "mean_latency_ms": (None if up.mean_latency is None
                                    else round(up.mean_latency * 1000, 3)),
                "latency_seconds": {
                    "sum": round(up.latency_sum, 6),
                    "buckets": dict(zip(bounds, up.latency_counts)),
                },
                "last_error": up.last_error or None,
                "last_error_age": (None if up.last_error_age is None
                                   else round(up.last_error_age, 3)),
                "requests_per_second": up.requests_per_second,
                "failures_per_second": up.failures_per_second,
            } for up in entry.upstreams],
            "cache": None if entry.cache is None else {
                **{name: getattr(entry.cache, name) for name in COUNTERS},
                "hit_ratio": (None if entry.cache.hit_ratio is None
                              else round(entry.cache.hit_ratio, 4)),
            },
        } for entry in report.entries],
        "cache_store": None if report.cache_store is None else asdict(report.cache_store),
    }
    return json.dumps(document, indent=1).encode()


RENDERERS = {"html": render_html, "json": render_json, "prometheus": render_prometheus}


def allowed(request, networks) -> bool:
    """Whether the client's address is in one of ``networks``."""
    peer = request.peer
    if not isinstance(peer, tuple):
        return False
    address = ipaddress.ip_address(peer[0].partition("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def implied_format(path: bytes, url: bytes) -> str | None:
    """The format a status URL stands for ("" for ``url`` itself); None for other paths."""
    if path == url:
        return ""
    if path == url + b".json":
        return "json"
    if path == url.rstrip(b"/") + b"/metrics":
        return "prometheus"
    return None


def chosen_format(query: bytes | None, implied: str, url: bytes) -> str:
    """The format named by ``?format=``, else the URL's own; ValueError if unknown."""
    asked = parse_qs((query or b"").decode("latin-1")).get("format")
    if not asked:
        return implied or "html"
    chosen = asked[-1].lower()
    if chosen not in FORMATS or (implied and chosen != implied):
        raise ValueError(f"format={asked[-1]} is not available here; use "
                         f"{url.decode('latin-1')}?format=html, json or prometheus")
    return chosen


def serve_status(request, state) -> bool:
    """Answer ``request`` if it asks for the statistics; False if it does not."""
    url = state.settings.statistics_url.encode()
    implied = implied_format(request.path, url)
    if implied is None:
        return False
    if not allowed(request, state.settings.statistics_allow):
        request.error(403, "The proxy statistics are not available to this address.")
        return True
    if request.method not in ("GET", "HEAD"):
        request.error(405, "The proxy statistics are read with GET or HEAD.")
        return True
    try:
        chosen = chosen_format(request.query, implied, url)
    except ValueError as exc:
        request.error(400, str(exc))
        return True
    body = RENDERERS[chosen](build_report(state))
    request.respond(200, [(b"Content-Type", CONTENT_TYPES[chosen]),
                          (b"Cache-Control", b"no-store")], body)
    return True
