"""The response cache in the proxy's request path: look up, serve, collapse, go
upstream, wait and invalidate (docs/proxy_cache.md).

For a request an entry with ``Cache On`` takes, ``ProxyCache.handle`` runs before loop
detection and forwarding, so a hit never touches an upstream. A GET or HEAD is looked
up; the policy (``rules.policy.decide``) says whether the stored response is served
fresh or stale, revalidated, or fetched anew. A request that goes upstream is forwarded
by the ordinary ``Forward`` with a ``CacheExchange`` (``exchange.py``) in place of the
client's request. PURGE is ``purge.py``'s; a range answered from a stored part,
``parts.py``'s; the background check of large disk bodies, ``verify.py``'s.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import TYPE_CHECKING

from ..forwarding.headers import is_upgrade
from .collapse import FAILED, Collapser
from .exchange import CacheExchange
from .fleet_locks import HELD, UNLOCKED, FleetLocks
from .figures import COLLAPSED, HITS, MISSES, STALE
from .parts import serve_stored_part
from .purge import purge
from .rules.control import request_cache_control
from .rules.fields import cache_status
from .rules.key import primary_key
from .rules.policy import Action, decide, stale_if_error_allows
from .rules.validation import conditional_headers
from .serve import Summaries, serve, serve_whole, tail
from .stores.memory import MemoryStore
from .stores.redis_store import RedisStore
from .stores.store import Store, Stored
from .sync import SYNC_SECONDS
from .verify import BodyVerifier

if TYPE_CHECKING:
    from .state import CacheState

log = logging.getLogger("monkey_py.proxy_reverse")

# Request headers that take a request off the fast path of a hit.
SPECIAL = frozenset({b"cache-control", b"pragma", b"authorization", b"range",
                     b"if-none-match", b"if-modified-since"})
CLIENT_CONDITIONALS = frozenset({b"if-none-match", b"if-modified-since"})
# Not sent with a background revalidation, which has no client and no body.
BACKGROUND_DROP = frozenset({b"if-none-match", b"if-modified-since", b"if-match",
                             b"if-unmodified-since", b"if-range", b"range",
                             b"content-length", b"transfer-encoding", b"expect"})
# Decisions after which the request goes upstream whatever another fetch brings (the
# client's no-cache, or max-age=0 which any fetched response is older than once it is
# stored): such a request leads a fetch, but does not wait for one.
GO_ALONE = frozenset({"request-no-cache"})
KEY_MEMO_SIZE = 4096


class ProxyCache:
    """The cache of one worker: its store (its own, or the shared disk), its fills."""

    def __init__(self, proxy, shared: CacheState, worker_index: int) -> None:
        self.proxy = proxy
        self.loop = proxy.loop
        self.settings = proxy.state.settings
        self.shared = shared
        self.stats = shared.stats
        self.log = shared.log
        config = shared.settings
        # With a Redis store: the store (``remote``, looked up through callbacks) and the
        # fleet's fill locks; None otherwise.
        self.remote: RedisStore | None = None
        self.fleet: FleetLocks | None = None
        if config.redis is not None:
            client = proxy.fleet.client(config.redis)
            subscriber = proxy.fleet.subscriber(config.redis)
            self.store = self.remote = RedisStore(
                self.loop, client, subscriber, tier_bytes=config.memory_tier,
                max_object=config.max_object, redis_max_object=config.redis_max_object,
                targets=config.targeted_fields)
            self.fleet = FleetLocks(self.loop, client, subscriber)
        else:
            self.store: Store = shared.disk or MemoryStore(config.max_bytes,
                                                           config.max_object)
        self.collapser = Collapser(
            self.loop, str(config.directory / ".locks") if shared.disk is not None else None)
        self.targets = config.targeted_fields
        self.summaries = Summaries(proxy.via, self.targets)
        self.verifier = None if shared.disk is None else BodyVerifier(self.loop, shared.disk,
                                                                      self.sizes)
        self._keys: dict[tuple[bytes, bytes], bytes] = {}
        self.stats.worker_started(worker_index)
        self._sync_timer = None
        if self.log is not None:
            self.log.worker_started(worker_index)
            self._sync_timer = self.loop.call_later(SYNC_SECONDS, self._sync)
        self.sizes()

    def stop(self) -> None:
        """The worker stops: no more log polling, and nobody waits for it."""
        if self._sync_timer is not None:
            self.loop.cancel(self._sync_timer)
            self._sync_timer = None
            self.log.worker_stopped()

    def _sync(self) -> None:
        """Apply the invalidation log without waiting for a request (PURGE answers wait
        for every worker's result)."""
        self.log.poll(self.remove)
        self._sync_timer = self.loop.call_later(SYNC_SECONDS, self._sync)

    def enabled(self, site, entry) -> bool:
        return self.settings.cache_for(site, entry.settings)

    def sizes(self) -> None:
        """Publish the store's size to the shared figures."""
        self.stats.store_size(self.store.stats())

    def key(self, req) -> bytes | None:
        """The request's primary key, remembered per (Host, target)."""
        secure = req.secure
        memo = (req.host, req.target, secure)
        key = self._keys.get(memo)
        if key is None:
            key = primary_key("https" if secure else "http", req.host, req.target) or b""
            if len(self._keys) >= KEY_MEMO_SIZE:
                self._keys.clear()
            self._keys[memo] = key
        return key or None

    def count(self, entry, counter: int, amount: int = 1) -> None:
        self.stats.count(self.shared.slots[id(entry)], counter, amount)

    def remove(self, key: bytes | None) -> int:
        """Drop ``key`` (None: everything) from this worker's store, as the log says;
        returns how many responses went."""
        removed = self.store.purge(key)
        self.sizes()
        return removed

    # -- the request path ----------------------------------------------------------------
    def handle(self, req, entry) -> None:
        """Answer ``req`` (matched by cache-enabled ``entry``) from the cache or upstream."""
        method = req.method
        if method == "PURGE":
            purge(self, req, entry)
        elif req.upgrade is not None and is_upgrade(req):
            self.proxy.forward(req, entry)
        elif method != "GET" and method != "HEAD":
            self.forward(CacheExchange(self, entry, req, self.key(req), req.headers,
                                       method=method, fwd="method"))
        else:
            key = self.key(req)
            if key is None:
                self.forward(CacheExchange(self, entry, req, None, req.headers,
                                           method=method, fwd="bypass"))
            else:
                self.lookup(req, entry, key, None)

    def _ask_redis(self, req, entry, key: bytes, waited: str | None) -> None:
        """Look the request up in Redis (and its stored part, for a range): ``lookup``
        goes on with the answer."""
        self.remote.fetch(key, req.headers, req.method == "GET" and req.header(
            b"range") is not None, partial(self._fetched, req, entry, key, waited))

    def _fetched(self, req, entry, key: bytes, waited: str | None, stored: Stored | None,
                 part: Stored | None) -> None:
        """Redis answered a lookup (a miss when it failed): go on as with a local store."""
        if req.finished:
            return
        try:
            self.lookup(req, entry, key, waited, (stored, part))
        except Exception:
            self.crashed(req)

    def crashed(self, req) -> None:
        """A bug on a path resumed from a callback: log it, answer 500 if nothing was."""
        log.exception("the cache failed on %s %s", req.method, req.target.decode("latin-1"))
        if not req.response_started and not req.completed:
            req.error(500)

    def lookup(self, req, entry, key: bytes, waited: str | None, fetched=None) -> None:
        """Serve from the store, wait for another request's fetch, or go upstream.

        ``waited``: why this request stopped waiting for another one's fetch; it then
        does not wait again. ``fetched``: with the Redis store, what Redis answered
        (``(stored, part)``, see ``RedisStore.fetch``): the lookup asks Redis when the
        memory tier has nothing it may serve fresh, and goes on here with its answer.
        """
        if self.log is not None:
            self.log.poll(self.remove)
        stored = self.store.lookup(key, req.headers)
        part = None
        if self.remote is not None:
            if fetched is not None:
                stored, part = fetched[0] or stored, fetched[1]
            elif stored is None:
                self._ask_redis(req, entry, key, waited)
                return
        if self.verifier is not None:
            if stored is None:
                self.sizes()  # the disk store may have found a damaged body
            elif stored.fd is not None:
                self.verifier.check(stored)
        if stored is None and serve_stored_part(self, req, entry, key, waited, part):
            return
        now = time.time()
        if stored is not None and self._fast_hit(req, entry, stored, now, waited):
            return
        decision = decide(req.method, req.headers, stored, now, self.targets)
        action = decision.action
        if self.remote is not None and fetched is None and action is not Action.FRESH:
            # The memory tier's response will not do: Redis may hold a newer one.
            self._ask_redis(req, entry, key, waited)
            return
        if action is Action.FRESH or action is Action.STALE_OK:
            self._serve_stored(req, entry, key, stored, decision, waited)
            return
        if waited == FAILED and stored is not None and stale_if_error_allows(
                stored, now, req.headers, self.targets):
            self._stale_for_failed_fill(req, entry, stored, now)
            return
        if stored is not None and action is not Action.REVALIDATE:
            stored.close()
            stored = None
        if action is Action.GATEWAY_TIMEOUT:
            self.count(entry, MISSES)
            req.error(504, "The response is not in the cache (only-if-cached).",
                      [(b"Cache-Status", cache_status(fwd="miss", detail="only-if-cached"))])
            return
        self._go_upstream(req, entry, key, stored, decision, waited)

    def _fast_hit(self, req, entry, stored: Stored, now: float, waited: str | None) -> bool:
        """Serve a fresh hit to a plain GET or HEAD (no request header that the policy
        must weigh) from the stored summary alone; False when the policy must decide."""
        for name, _ in req.headers:
            if name in SPECIAL:
                return False
        summary = self.summaries.get(stored)
        age = summary.age(now)
        if summary.no_cache or summary.lifetime <= age:
            return False
        self.count(entry, HITS)
        if waited is not None:
            self.count(entry, COLLAPSED)
        value = b"monkey_py; hit; ttl=%d%s" % (summary.lifetime - age,
                                              b"; collapsed" if waited else b"")
        serve_whole(req, stored, summary.status, summary.head + tail(age, value))
        return True

    def _serve_stored(self, req, entry, key: bytes, stored: Stored, decision,
                      waited: str | None) -> None:
        """A fresh or allowed stale response, then a background revalidation if due."""
        fresh = decision.action is Action.FRESH
        self.count(entry, HITS if fresh else STALE)
        if waited is not None:
            self.count(entry, COLLAPSED)
        value = cache_status(hit=True, ttl=decision.ttl, collapsed=waited is not None,
                             detail=None if fresh else decision.reason)
        serve(req, stored, self.summaries.get(stored), decision.age, value)
        if decision.background and not self.proxy.guard.marked(req):
            self._background(req, entry, key, stored)

    def _stale_for_failed_fill(self, req, entry, stored: Stored, now: float) -> None:
        """The fetch this request waited for met an upstream error: the stale response
        stands in for it (stale-if-error) without another attempt."""
        self.count(entry, STALE)
        self.count(entry, COLLAPSED)
        summary = self.summaries.get(stored)
        age = summary.age(now)
        serve(req, stored, summary, age, cache_status(
            fwd="stale", ttl=summary.lifetime - age, collapsed=True, detail="stale-if-error"))

    def _go_upstream(self, req, entry, key: bytes, stored: Stored | None, decision,
                     waited: str | None) -> None:
        """Lead a fetch, wait for one already running, or forward on its own. A HEAD
        that leads goes upstream as a GET, so that its answer fills the cache."""
        revalidate = stored is not None
        fill = None
        method = req.method
        # A request that carries this server's own Via mark comes back from a loop: it
        # gets its 508 at once, neither waiting for a fetch nor leading one.
        if waited is None and not self.proxy.guard.marked(req):
            timeout = entry.settings.cache_lock_timeout
            alone = decision.reason in GO_ALONE or (
                decision.reason == "request-max-age"
                and request_cache_control(req.headers).seconds("max-age") == 0)
            if self._may_lead(req, revalidate):
                fill = self.collapser.begin(key, timeout)
                if fill is None and not alone:
                    self._wait(req, entry, key, stored, timeout)
                    return
                if fill is not None and self.fleet is not None and not alone:
                    self.fleet.take(key, timeout, partial(
                        self._locked, req, entry, key, stored, decision, fill, timeout))
                    return
                if fill is not None:
                    method = "GET"
            elif not alone and self.collapser.busy(key):
                self._wait(req, entry, key, stored, timeout)
                return
        self._fetch(req, entry, key, stored, decision, method, fill)

    def _fetch(self, req, entry, key: bytes, stored: Stored | None, decision, method: str,
               fill) -> None:
        """Forward ``req`` upstream, with the stored response's validators if any."""
        forwarded = req.headers
        if stored is not None:
            forwarded = [(name, value) for name, value in forwarded
                         if name not in CLIENT_CONDITIONALS]
            forwarded.extend(conditional_headers(stored.headers))
        self.forward(CacheExchange(self, entry, req, key, forwarded, method=method,
                                   stored=stored, fwd=decision.fwd or "miss", fill=fill))

    def _locked(self, req, entry, key: bytes, stored: Stored | None, decision, fill,
                timeout: float, outcome) -> None:
        """The fleet's lock for this fill: taken (go upstream, release it when the fill
        ends), held by another instance (wait for its release with those waiting here),
        or not to be had (go upstream without it)."""
        try:
            if isinstance(outcome, tuple) and outcome[0] == HELD:
                self.collapser.wait(key, req, timeout, partial(self._resume, req, entry, key))
                self.fleet.wait(key, outcome[1], fill.expires, lambda: fill.done(False))
                if stored is not None:
                    stored.close()
                return
            if outcome is not UNLOCKED:
                fill.release = outcome
            if req.finished:
                fill.done(False)
                if stored is not None:
                    stored.close()
                return
            self._fetch(req, entry, key, stored, decision, "GET", fill)
        except Exception:
            fill.done(False)
            self.crashed(req)

    @staticmethod
    def _may_lead(req, revalidate: bool) -> bool:
        """Whether the answer to this request, forwarded as a GET, can fill the cache."""
        if req.method != "GET" and req.method != "HEAD":
            return False
        for name, _ in req.headers:
            if name == b"range" or (not revalidate and name in CLIENT_CONDITIONALS):
                return False
        return True

    def _wait(self, req, entry, key: bytes, stored: Stored | None, timeout: float) -> None:
        if stored is not None:
            stored.close()
        self.collapser.wait(key, req, timeout, partial(self._resume, req, entry, key))

    def _resume(self, req, entry, key: bytes, why: str) -> None:
        """A request that waited for a fill looks the store up again."""
        try:
            self.lookup(req, entry, key, why)
        except Exception:
            self.crashed(req)

    def _background(self, req, entry, key: bytes, stored: Stored) -> None:
        """One revalidation in the background (stale-while-revalidate), if none runs
        here nor, with the Redis store, anywhere in the fleet."""
        timeout = entry.settings.cache_lock_timeout
        fill = self.collapser.begin(key, timeout)
        if fill is None:
            return
        headers = [(name, value) for name, value in req.headers if name not in BACKGROUND_DROP]
        headers.extend(conditional_headers(stored.headers))
        exchange = CacheExchange(self, entry, None, key, headers, method="GET",
                                 stored=stored, fwd="stale", fill=fill, origin=req)
        if self.fleet is None:
            self.forward(exchange)
            return

        def locked(outcome) -> None:
            if isinstance(outcome, tuple):  # another instance revalidates it
                exchange.abort()
                return
            if outcome is not UNLOCKED:
                fill.release = outcome
            self.forward(exchange)
        self.fleet.take(key, timeout, locked)

    def forward(self, exchange: CacheExchange) -> None:
        """Hand ``exchange`` to the proxy; whatever fails on the way ends it (and the
        fill it may lead) instead of leaving waiters to time out."""
        try:
            exchange.forward = self.proxy.forward(exchange, exchange.entry)
        except Exception:
            log.exception("the cache failed to forward %s %s", exchange.method,
                          exchange.target.decode("latin-1"))
            exchange.crashed()

    # -- invalidation and purge -------------------------------------------------------------
    def invalidate(self, keys: list[bytes]) -> None:
        """Remove ``keys`` here and, through the log, in every other worker's store."""
        if self.log is None:
            for key in keys:
                self.store.invalidate(key)
            self.sizes()
            return
        for key in keys:
            self.log.publish(key)
        self.log.poll(self.remove)
