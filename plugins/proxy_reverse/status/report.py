"""What the statistics show in every format: a summary over every server, then the
proxy's entries in configuration order, each with its settings that bound the load
(limits, retry budget, health check), its queue and retry figures, its upstreams'
figures and its cache's, summed over the workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from ..cache.figures import CacheFigures, StoreFigures
from ..history import Traffic
from ..snapshots import EntrySnapshot, UpstreamSnapshot
from ..stats import HISTORY_SECONDS


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
class Summary:
    """The figures over every server of every entry: how many are unavailable, and
    their traffic in each of the last completed seconds."""

    servers: int
    # Offline in every worker or held down by its health check; offline in some workers.
    servers_down: int
    servers_partly_offline: int
    last_minute: Traffic

    @property
    def window(self) -> int:
        """The seconds the rates are taken over."""
        return self.last_minute.seconds

    @property
    def request_rate(self) -> float:
        return sum(self.last_minute.requests) / self.window

    @property
    def error_rate(self) -> float:
        """5xx responses per second."""
        return sum(self.last_minute.errors) / self.window

    @property
    def failure_rate(self) -> float:
        return sum(self.last_minute.failures) / self.window

    @property
    def error_ratio(self) -> float | None:
        """The share of the window's responses that were 5xx; None: no response."""
        responses = sum(self.last_minute.responses)
        return sum(self.last_minute.errors) / responses if responses else None


def summarize(upstreams: list[UpstreamSnapshot]) -> Summary:
    """The summary of ``upstreams``: their states counted, their histories added."""
    states = [upstream.state for upstream in upstreams]

    def added(series: str) -> list:
        return [sum(values) for values in
                zip(*(getattr(upstream, series) for upstream in upstreams))] or (
            [0] * HISTORY_SECONDS)

    return Summary(
        servers=len(upstreams),
        servers_down=sum(state in ("offline", "down") for state in states),
        servers_partly_offline=states.count("partly offline"),
        last_minute=Traffic(1, added("requests_per_second"), added("failures_per_second"),
                            added("errors_per_second"), added("responses_per_second"),
                            added("latency_per_second")))


@dataclass
class StatusReport:
    """What every format shows: the entries, the traffic of the last minutes, and since
    when the figures count."""

    url: str
    since: float
    workers: int
    entries: list[EntryStatus]
    # The cache's store; None when no entry caches.
    cache_store: StoreFigures | None = None
    traffic: Traffic = field(default_factory=Traffic.idle)
    # The fleet (fleet.figures.FleetView); None outside a fleet.
    fleet: object = None

    @cached_property
    def summary(self) -> Summary:
        return summarize([upstream for entry in self.entries for upstream in entry.upstreams])


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
                        None if cache is None else cache.stats.store(),
                        state.stats.traffic(), fleet)
