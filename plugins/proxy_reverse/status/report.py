"""What the statistics show in every format: the proxy's entries in configuration
order, each with its upstreams' figures and its cache's, summed over the workers."""

from __future__ import annotations

from dataclasses import dataclass

from ..cache.figures import CacheFigures, StoreFigures
from ..stats import UpstreamSnapshot


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
