"""What the statistics show in every format: the proxy's entries in configuration
order, each with its settings that bound the load (limits, retry budget, health check),
its queue and retry figures, its upstreams' figures and its cache's, summed over the
workers."""

from __future__ import annotations

from dataclasses import dataclass

from ..cache.figures import CacheFigures, StoreFigures
from ..stats import EntrySnapshot, UpstreamSnapshot


@dataclass
class EntryStatus:
    """One ``[PROXY_ENTRY]`` and its upstreams' figures.

    ``label`` names it everywhere (its ``Name``, or its file and line relative to the
    configuration directory); ``balancer`` is the balancer's entry-point name.
    """

    label: str
    match: list[str]
    balancer: str
    upstreams: list[UpstreamSnapshot]
    # The entry's cache figures; None when it caches on no site.
    cache: CacheFigures | None = None
    name: str | None = None
    location: str = ""
    # Its queue, retry and panic figures; zero when unknown.
    figures: EntrySnapshot | None = None
    # The settings the figures are measured against (EntrySettings), if known.
    settings: object = None


@dataclass
class StatusReport:
    """What every format shows: the entries, and since when the figures count."""

    url: str
    since: float
    workers: int
    entries: list[EntryStatus]
    # The cache's store; None when no entry caches.
    cache_store: StoreFigures | None = None
    # The fleet (fleet.figures.FleetView); None outside a fleet.
    fleet: object = None


def build_report(state, fleet=None) -> StatusReport:
    """Group the upstreams' shared figures by entry, in configuration order."""
    settings = state.settings
    cache = state.cache
    figures = {} if cache is None else {found.entry: found for found in cache.stats.entries()}
    any_site = cache is not None and any(settings.site_cache.values())
    entries = {entry.label: entry for entry in state.entries()}
    snapshots = {found.label: found for found in state.stats.entry_snapshot()}
    checks = state.checks.snapshot() if state.checks is not None else {}
    found: dict[str, EntryStatus] = {}
    for slot, upstream in enumerate(state.stats.snapshot()):
        status = found.get(upstream.entry)
        if status is None:
            entry = entries[upstream.entry]
            config = entry.settings
            caches = cache is not None and (config.cache or any_site)
            status = found[upstream.entry] = EntryStatus(
                upstream.entry, [pattern.pattern for pattern in config.match],
                entry.balancer_name, [], figures.get(upstream.entry) if caches else None,
                name=config.name, location=config.where,
                figures=snapshots.get(upstream.entry), settings=config)
            weights = {spec.name: spec.weight for spec in config.servers}
        upstream.weight = weights[upstream.name]
        upstream.check = checks.get(slot)
        status.upstreams.append(upstream)
    return StatusReport(settings.statistics_url, state.stats.since, state.stats.workers,
                        list(found.values()),
                        None if cache is None else cache.stats.store(), fleet)
