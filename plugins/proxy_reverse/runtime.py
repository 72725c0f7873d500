"""The proxy's state: built in the master per configuration, then used in each worker."""

from __future__ import annotations

from dataclasses import dataclass

from monkey_py_plugins.balancers.base import Balancer, Server
from monkey_py_plugins.balancers.registry import load_balancer

from .cache.front import CacheState, ProxyCache
from .forwarding.forward import Forward
from .forwarding.loop_guard import LOOP_DETECTED, LoopGuard
from .forwarding.upstreams import Pool, Upstream
from .settings import EntrySettings, ProxySettings, read_settings
from .stats import PUBLISH_SECONDS, ProxyStats



@dataclass
class Entry:
    """One ``[PROXY_ENTRY]`` with its balancer and its upstreams in this worker."""

    settings: EntrySettings
    label: str
    balancer: Balancer
    primaries: list[Upstream]
    backups: list[Upstream]

    def __post_init__(self) -> None:
        # Whether the balancer wants connection_opened/closed (the defaults do nothing).
        kind = type(self.balancer)
        self.counts_connections = (
            kind.connection_opened is not Balancer.connection_opened
            or kind.connection_closed is not Balancer.connection_closed)
        patterns = self.settings.match
        # ``matches(target)``: whether a Match rule is found in the target; with one rule
        # (the usual case) it is that rule's own search.
        self.matches = patterns[0].search if len(patterns) == 1 else self._any_match

    def _any_match(self, target: str) -> bool:
        return any(pattern.search(target) for pattern in self.settings.match)


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
        for number, settings in enumerate(self._all_entries()):
            label = f"{settings.location}"
            primaries = [s for s in settings.servers if not s.backup]
            backups = [s for s in settings.servers if s.backup]
            balancer_class = load_balancer(settings.balancer, settings.balancer_location)
            balancer = balancer_class.create(
                [Server(i, spec.name, spec.weight) for i, spec in enumerate(primaries)], workers)
            first = len(labels)
            labels.extend((label, spec.name, spec.backup) for spec in primaries + backups)
            self._entries[id(settings)] = Entry(
                settings, label, balancer,
                [Upstream(spec, balancer.servers[i], first + i, settings,
                          self.guard.is_self(spec)) for i, spec in enumerate(primaries)],
                [Upstream(spec, None, first + len(primaries) + i, settings,
                          self.guard.is_self(spec)) for i, spec in enumerate(backups)],
            )
        self.stats = ProxyStats(labels, workers)
        # The response cache's shared part (docs/proxy_cache.md); None when it is off.
        self.cache = CacheState.create(self.settings, list(self._entries.values()), workers)

    def _all_entries(self) -> list[EntrySettings]:
        entries = list(self.settings.entries)
        for own in self.settings.site_entries.values():
            entries.extend(own)
        return entries

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
        url = state.settings.statistics_url
        self.statistics_url = None if url is None else url.encode()
        self.vhosts = worker.server.vhosts
        self.guard = state.guard
        self.via = state.guard.via
        workers = worker.config.server.worker_count()
        for entry in state._entries.values():
            entry.balancer.worker_started(worker.index, workers)
        stats = state.stats
        stats.worker_started(worker.index)
        for upstream in state.upstreams():
            upstream.tally = stats.tallies[upstream.slot]
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

    def stop(self) -> None:
        if self.cache is not None:
            self.cache.stop()
        self.pool.close_all(self.state.upstreams())
        self.loop.cancel(self._publisher)
        self.state.stats.publish()

    def _publish(self) -> None:
        self.state.stats.publish()
        self._publisher = self.loop.call_later(PUBLISH_SECONDS, self._publish)

    # -- accounting, called by Forward ---------------------------------------------------
    def failed(self, entry: Entry, upstream: Upstream, reason: str,
               responded: bool = False) -> None:
        """An attempt failed; ``responded``: after its response head was counted."""
        now = self.loop.time()
        upstream.failed(now, reason)
        self.state.stats.failed(upstream.slot, reason, upstream.offline_until, responded)
