"""The proxy's state: built in the master per configuration, then used in each worker."""

from __future__ import annotations

import logging

from monkey_py_plugins.balancers.base import Balancer, Server
from monkey_py_plugins.balancers.registry import balancer_name, load_balancer

from .cache.front import ProxyCache
from .cache.state import CacheState
from .fleet.checks import FleetChecks
from .fleet.figures import FleetFigures
from .fleet.health import FleetHealth
from .fleet.links import FleetLinks
from .forwarding.availability import Availability
from .forwarding.forward import Forward
from .forwarding.health_board import DOWN, HealthBoard
from .forwarding.health_check import HealthChecker
from .forwarding.limits import EntryQueue, RetryBudget
from .forwarding.loop_guard import LOOP_DETECTED, LoopGuard
from .forwarding.throttled_log import ThrottledLog
from .forwarding.upstreams import Pool, Upstream
from .settings import EntrySettings, ProxySettings, read_settings
from .stats import PUBLISH_SECONDS, ProxyStats

log = logging.getLogger("monkey_py.proxy_reverse")


class Entry:
    """One ``[PROXY_ENTRY]`` with its balancer and its upstreams, as a worker uses them:
    which servers are available, the queue of requests waiting for a busy one, the
    retry budget."""

    def __init__(self, settings: EntrySettings, balancer: Balancer, primaries: list[Upstream],
                 backups: list[Upstream], notices: ThrottledLog) -> None:
        self.settings = settings
        self.label = settings.label
        self.balancer = balancer
        # The balancer's entry-point name ("RoundRobin" for "round_robin").
        self.balancer_name = balancer_name(settings.balancer)
        self.primaries = primaries
        self.backups = backups
        # Whether the balancer wants connection_opened/closed (the defaults do nothing).
        kind = type(balancer)
        self.counts_connections = (
            kind.connection_opened is not Balancer.connection_opened
            or kind.connection_closed is not Balancer.connection_closed)
        patterns = settings.match
        # ``matches(target)``: whether a Match rule is found in the target; with one rule
        # (the usual case) it is that rule's own search.
        self.matches = patterns[0].search if len(patterns) == 1 else self._any_match
        self.availability = Availability(balancer, primaries, backups,
                                         settings.panic_threshold, settings.slow_start)
        # The queue exists only with MaxConnections: None keeps the request path short.
        self.queue = None
        self.retries = RetryBudget(settings.retry_budget, settings.retry_budget_min,
                                   primaries + backups)
        self.notices = notices
        self.tally = None

    def _any_match(self, target: str) -> bool:
        return any(pattern.search(target) for pattern in self.settings.match)

    def worker_started(self, loop, tally) -> None:
        """In a worker: count into ``tally`` (its EntryTally), queue on ``loop``."""
        self.tally = self.retries.tally = tally
        settings = self.settings
        if settings.max_connections:
            self.queue = EntryQueue(loop, self.label, settings.queue_size,
                                    settings.queue_timeout, self.notices)
            self.queue.tally = tally


_UNSET = object()


class ProxyState:
    """Everything one configuration of the proxy needs, created before the fork."""

    def __init__(self, config, token: bytes) -> None:
        self.settings: ProxySettings = read_settings(config)
        self.guard = LoopGuard(token, config.server.listen)
        workers = config.server.worker_count()
        labels = []
        self._entries: dict[int, Entry] = {}
        # Each site's entries, looked up once (sites live as long as the configuration).
        self._by_site: dict[int, list[Entry] | None] = {}
        # Repeated errors are logged once a minute at most (a flood of requests meets them).
        self.notices = ThrottledLog(log)
        for settings in self.settings.all_entries():
            label = settings.label
            if settings.tls_context is not None and not settings.upstream_verify:
                log.warning("entry %s: UpstreamVerify Off: the certificates of %s are not "
                            "verified (anyone on the path can pose as the server)", label,
                            ", ".join(s.name for s in settings.servers if s.tls))
            primaries = [s for s in settings.servers if not s.backup]
            backups = [s for s in settings.servers if s.backup]
            sole = len(settings.servers) == 1
            balancer_class = load_balancer(settings.balancer, settings.balancer_location)
            balancer = balancer_class.create(
                [Server(i, spec.name, spec.weight) for i, spec in enumerate(primaries)], workers)
            first = len(labels)
            labels.extend((label, spec.name, spec.backup) for spec in primaries + backups)
            self._entries[id(settings)] = Entry(
                settings, balancer,
                [Upstream(spec, balancer.servers[i], first + i, settings,
                          self.guard.is_self(spec), sole) for i, spec in enumerate(primaries)],
                [Upstream(spec, None, first + len(primaries) + i, settings,
                          self.guard.is_self(spec)) for i, spec in enumerate(backups)],
                self.notices,
            )
        self.stats = ProxyStats(labels, workers,
                                entries=[entry.label for entry in self._entries.values()])
        # The servers with an active health check, and their shared verdicts (None when
        # no entry has a check).
        self.checked = [upstream for entry in self._entries.values()
                        if entry.settings.health_check is not None
                        for upstream in entry.primaries + entry.backups]
        self.checks = HealthBoard([upstream.slot for upstream in self.checked]) \
            if self.checked else None
        # The response cache's shared part (docs/proxy_cache.md); None when it is off.
        self.cache = CacheState.create(self.settings, list(self._entries.values()), workers)

    def inherit(self, previous: ProxyState) -> None:
        """Start the health checks' verdicts from those of the configuration this one
        replaces (a reload), for the servers both check: a server down stays down."""
        if self.checks is None or previous.checks is None:
            return
        known = {(upstream.entry.label, upstream.name): upstream.slot
                 for upstream in previous.checked}
        for upstream in self.checked:
            slot = known.get((upstream.entry.label, upstream.name))
            if slot is not None:
                self.checks.inherit(upstream.slot, previous.checks, slot)

    def entries(self) -> list[Entry]:
        """Every entry, in configuration order (that of the statistics)."""
        return list(self._entries.values())

    def entries_for(self, site) -> list[Entry] | None:
        """The entries that apply to ``site``; None when the proxy is off there."""
        found = self._by_site.get(id(site), _UNSET)
        if found is _UNSET:
            settings = self.settings.entries_for(site)
            found = self._by_site[id(site)] = (
                None if settings is None else [self._entries[id(s)] for s in settings])
        return found

    def upstreams(self):
        for entry in self._entries.values():
            yield from entry.primaries
            yield from entry.backups

    def release(self) -> None:
        """Drop what this configuration holds (called when its workers are gone)."""
        self._entries.clear()


class ProxyWorker:
    """The proxy inside one worker: its loop, its pool, and the accounting."""

    def __init__(self, state: ProxyState, worker) -> None:
        self.state = state
        self.loop = worker.loop
        self.pool = Pool(self.loop)
        # Redis, for the parts of the proxy that share with other instances (fleet mode).
        self.fleet = FleetLinks(self.loop)
        url = state.settings.statistics_url
        self.statistics_url = None if url is None else url.encode()
        self.vhosts = worker.server.vhosts
        self.guard = state.guard
        self.via = state.guard.via
        workers = worker.config.server.worker_count()
        for entry in state.entries():
            entry.balancer.worker_started(worker.index, workers)
        stats = state.stats
        stats.worker_started(worker.index)
        for upstream in state.upstreams():
            upstream.tally = stats.tallies[upstream.slot]
        for entry, tally in zip(state.entries(), stats.entry_tallies):
            entry.worker_started(self.loop, tally)
        # The health checks: worker 0 runs them; every worker follows their verdicts.
        self.checks_seen = -1
        self.checker = None
        fleet = state.settings.fleet
        # Passive health and check results shared with the fleet (None: not in one).
        self.shared_health = None if fleet is None else FleetHealth(
            self, fleet, announce=worker.index == 0)
        # The fleet's figures for the statistics page, published by worker 0.
        self.fleet_figures = None if fleet is None else FleetFigures(
            self, fleet, publishing=worker.index == 0)
        if state.checks is not None:
            self._follow_checks(starting=True)
            if worker.index == 0:
                self.checker = HealthChecker(self.loop, state.checks, state.checked, self.via)
                if self.shared_health is not None:
                    FleetChecks(self.shared_health, self.checker, state.checks)
                self.checker.start()
        self._publisher = self.loop.call_later(PUBLISH_SECONDS, self._publish)
        self.cache = None if state.cache is None else ProxyCache(self, state.cache,
                                                                 worker.index)

    def handle(self, request) -> bool:
        entries = self.state.entries_for(request.site)
        if not entries:
            return False
        target = request.target.decode("latin-1")
        for entry in entries:
            if entry.matches(target):
                # The cache answers first: a hit is served even when the upstream is
                # this server itself; what it forwards comes back through forward().
                if self.cache is not None and self.cache.enabled(request.site, entry):
                    self.cache.handle(request, entry)
                else:
                    self.forward(request, entry)
                return True
        return False

    def forward(self, request, entry: Entry) -> Forward | None:
        """Loop detection, then forwarding; ``request`` may be the cache's stand-in."""
        if self.guard.marked(request):
            request.error(LOOP_DETECTED, "This request was already forwarded by "
                          "this server: its upstreams lead back to it.")
            return None
        forward = Forward(self, entry, request)
        try:
            forward.start()
        except Exception as exc:
            # The balancer (third-party code) or a bug failed before the request had an
            # upstream: answer it now, so that nothing waiting on it (a cache fill) lingers.
            forward.crashed(exc)
        return forward

    def loops_back(self, request, upstream: Upstream) -> bool:
        """True when forwarding ``request`` to ``upstream`` (this server) would proxy it again."""
        site = self.vhosts.resolve(upstream.host_for(request).lower())
        entries = self.state.entries_for(site)
        if not entries:
            return False
        target = request.target.decode("latin-1")
        return any(entry.matches(target) for entry in entries)

    def instance_stopping(self) -> None:
        """The whole instance is stopping: the fleet hears it now, while the loop runs."""
        if self.fleet_figures is not None:
            self.fleet_figures.leave()

    def stop(self) -> None:
        if self.cache is not None:
            self.cache.stop()
        if self.checker is not None:
            self.checker.stop()
        self.pool.close_all(self.state.upstreams())
        if self.fleet_figures is not None:
            self.fleet_figures.stop()
        self.fleet.close()
        self.loop.cancel(self._publisher)
        self.state.stats.publish()

    def _publish(self) -> None:
        state = self.state
        if state.checks is not None and state.checks.generation != self.checks_seen:
            self._follow_checks()
        now = self.loop.now
        for entry in state.entries():
            # Reviewed here too, so that the figures follow an entry without traffic.
            availability = entry.availability
            if availability.review_at <= now:
                availability.review(now)
            entry.tally.panic = availability.panic
        state.stats.publish()
        self._publisher = self.loop.call_later(PUBLISH_SECONDS, self._publish)

    def _follow_checks(self, starting: bool = False) -> None:
        """Hold the servers the health checks found down offline, let the others back
        (with a slow start, also when they went down and up between two readings)."""
        board = self.state.checks
        self.checks_seen = board.generation
        for upstream in self.state.checked:
            down = board.verdict(upstream.slot) == DOWN
            rises = board.rises(upstream.slot)
            if starting:
                upstream.check_rises = rises
            if down != upstream.check_down or rises != upstream.check_rises:
                upstream.check_rises = rises
                upstream.checked(down, self.loop.now)

    # -- accounting, called by Forward ---------------------------------------------------
    def count_failure(self, upstream: Upstream, reason: str, responded: bool) -> None:
        """An attempt failed: counted, its error published; ``responded``: after its
        response head was counted."""
        self.state.stats.failed(upstream.slot, reason, upstream.passive_until, responded)

    def charge(self, upstream: Upstream, reason: str) -> None:
        """Charge a failure to the server's passive health."""
        if upstream.failed(self.loop.now, reason):
            self.state.stats.offline(upstream.slot, upstream.passive_until)
            if self.shared_health is not None:
                self.shared_health.taken_offline(upstream)

    def recovered(self, upstream: Upstream) -> None:
        """A server with failures answered: they are forgiven, an offline mark ends."""
        early = upstream.passive_until > self.loop.now
        upstream.succeeded(self.loop.now)
        self.state.stats.offline(upstream.slot, 0.0)
        if early and self.shared_health is not None:
            self.shared_health.back_online(upstream)

    def named_nothing(self, entry: Entry, request) -> None:
        """The balancer gave no server for ``request``: logged, once a minute at most."""
        self.state.notices.error(
            (entry.label, "no server"), self.loop.now,
            "load balancer %s (entry %s) named no upstream server for %s %s; %s",
            entry.balancer_name, entry.label, request.method,
            request.target.decode("latin-1"),
            "trying the backup servers" if entry.backups else "answering 503")
