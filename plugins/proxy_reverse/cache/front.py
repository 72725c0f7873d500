"""The response cache in the proxy's request path: look up, serve, collapse, store,
revalidate, invalidate and purge (docs/proxy_cache.md).

For a request an entry with ``Cache On`` takes, ``ProxyCache.handle`` runs before loop
detection and forwarding, so a hit never touches an upstream. A GET or HEAD is looked
up; the policy (``rules.policy.decide``) says whether the stored response is served
fresh or stale, revalidated, or fetched anew. A request that goes upstream is forwarded
by the ordinary ``Forward`` with a ``CacheExchange`` in place of the client's request:
the exchange sees the upstream's answer before the client does, stores it as it
streams, turns a 304 to a revalidation into the stored response, serves a stale
response when the upstream fails (stale-if-error), invalidates after unsafe methods,
and adds ``Cache-Status`` (RFC 9211). A background revalidation (stale-while-revalidate)
is a ``CacheExchange`` without a client.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from monkey_py.config import ConfigError

from ..forwarding.headers import is_upgrade
from ..status_page import allowed
from .collapse import Collapser, Fill
from .figures import COLLAPSED, HITS, MISSES, PURGED, REVALIDATED, STALE, STORED, CacheStats
from .rules.control import header_value, response_cache_control
from .rules.fields import cache_status, storage_headers
from .rules.key import primary_key
from .rules.policy import (
    Action,
    decide,
    freshness_lifetime,
    invalidation_targets,
    stale_if_error_allows,
    storable,
)
from .rules.validation import conditional_headers, not_modified_matches, updated_headers
from .serve import Summaries, serve, serve_whole, tail
from .stores.disk import DiskStore
from .stores.memory import MemoryStore
from .stores.store import Meta, Store, Stored
from .sync import InvalidationLog

log = logging.getLogger("monkey_py.proxy_reverse")

# Request headers that take a request off the fast path of a hit.
SPECIAL = frozenset({b"cache-control", b"pragma", b"authorization", b"range",
                     b"if-none-match", b"if-modified-since"})
CLIENT_CONDITIONALS = frozenset({b"if-none-match", b"if-modified-since"})
# Not sent with a background revalidation, which has no client and no body.
BACKGROUND_DROP = frozenset({b"if-none-match", b"if-modified-since", b"if-match",
                             b"if-unmodified-since", b"if-range", b"range",
                             b"content-length", b"transfer-encoding", b"expect"})
# Decisions the client's own directives caused: such a request, like one with
# Authorization, neither waits for another's fetch nor leads one.
OWN_WAY = frozenset({"request-no-cache", "request-max-age", "min-fresh", "authorization"})
UPSTREAM_ERRORS = frozenset({500, 502, 503, 504})
SAFE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
KEY_MEMO_SIZE = 4096


def worth_keeping(status: int, headers, now: float) -> bool:
    """Whether a storable response could ever be reused: it is fresh for a while, can
    be revalidated (ETag, Last-Modified) or may be served stale (stale-if-error). One
    without any of these would only take space."""
    if freshness_lifetime(status, headers, now) > 0:
        return True
    if header_value(headers, b"etag") is not None or (
            header_value(headers, b"last-modified") is not None):
        return True
    return "stale-if-error" in response_cache_control(headers)


class CacheState:
    """What the workers share, made before the fork: figures, the invalidation log for
    memory stores, and the disk store."""

    def __init__(self, settings, entries: list, workers: int) -> None:
        cache = settings.cache
        self.settings = cache
        self.slots = {id(entry): slot for slot, entry in enumerate(entries)}
        self.stats = CacheStats([entry.label for entry in entries], workers, cache.store,
                                cache.max_bytes)
        self.log = InvalidationLog() if cache.store == "memory" and workers > 1 else None
        self.disk: DiskStore | None = None
        if cache.store == "disk":
            try:
                self.disk = DiskStore(str(cache.directory), cache.max_bytes,
                                      cache.max_object)
            except ValueError as exc:
                raise ConfigError(str(exc), cache.directory_location) from None

    @classmethod
    def create(cls, settings, entries: list, workers: int) -> CacheState | None:
        """The shared state, or None when no entry caches anywhere."""
        return cls(settings, entries, workers) if settings.cache_anywhere() else None


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
        self.store: Store = shared.disk or MemoryStore(config.max_bytes, config.max_object)
        self.collapser = Collapser(
            self.loop, str(config.directory / ".locks") if shared.disk is not None else None)
        self.summaries = Summaries(proxy.via)
        self._keys: dict[tuple[bytes, bytes], bytes] = {}
        self.stats.worker_started(worker_index)
        if self.log is not None:
            self.log.worker_started()
        self.sizes()

    def enabled(self, site, entry) -> bool:
        return self.settings.cache_for(site, entry.settings)

    def sizes(self) -> None:
        """Publish the store's size to the shared figures."""
        self.stats.store_size(self.store.stats())

    def key(self, req) -> bytes | None:
        """The request's primary key, remembered per (Host, target)."""
        memo = (req.host, req.target)
        key = self._keys.get(memo)
        if key is None:
            key = primary_key("http", req.host, req.target) or b""
            if len(self._keys) >= KEY_MEMO_SIZE:
                self._keys.clear()
            self._keys[memo] = key
        return key or None

    def count(self, entry, counter: int) -> None:
        self.stats.count(self.shared.slots[id(entry)], counter)

    def remove(self, key: bytes | None) -> None:
        """Drop ``key`` (None: everything) from this worker's store; from the log."""
        self.store.purge(key)
        self.sizes()

    # -- the request path ----------------------------------------------------------------
    def handle(self, req, entry) -> None:
        """Answer ``req`` (matched by cache-enabled ``entry``) from the cache or upstream."""
        method = req.method
        if method == "PURGE":
            self._purge(req, entry)
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

    def lookup(self, req, entry, key: bytes, waited: str | None) -> None:
        """Serve from the store, wait for another request's fetch, or go upstream.

        ``waited``: why this request stopped waiting for another one's fetch; it then
        does not wait again.
        """
        if self.log is not None:
            self.log.poll(self.remove)
        stored = self.store.lookup(key, req.headers)
        now = time.time()
        if stored is not None and self._fast_hit(req, entry, stored, now, waited):
            return
        decision = decide(req.method, req.headers, stored, now)
        action = decision.action
        if action is Action.FRESH or action is Action.STALE_OK:
            self._serve_stored(req, entry, key, stored, decision, waited)
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
        if decision.background:
            self._background(req, entry, key, stored)

    def _go_upstream(self, req, entry, key: bytes, stored: Stored | None, decision,
                     waited: str | None) -> None:
        """Lead a fetch, wait for one already running, or forward on its own."""
        revalidate = stored is not None
        fill = None
        if waited is None and decision.reason not in OWN_WAY and (
                req.header(b"authorization") is None):
            timeout = entry.settings.cache_lock_timeout
            if self._may_lead(req, revalidate):
                fill = self.collapser.begin(key, timeout)
                if fill is None:
                    self._wait(req, entry, key, stored, timeout)
                    return
            elif self.collapser.busy(key):
                self._wait(req, entry, key, stored, timeout)
                return
        forwarded = req.headers
        if revalidate:
            forwarded = [(name, value) for name, value in forwarded
                         if name not in CLIENT_CONDITIONALS]
            forwarded.extend(conditional_headers(stored.headers))
        self.forward(CacheExchange(self, entry, req, key, forwarded, method=req.method,
                                   stored=stored, fwd=decision.fwd or "miss", fill=fill))

    @staticmethod
    def _may_lead(req, revalidate: bool) -> bool:
        """Whether the answer to this request, as forwarded, can fill the cache."""
        if req.method != "GET":
            return False
        for name, _ in req.headers:
            if name == b"range" or (not revalidate and name in CLIENT_CONDITIONALS):
                return False
        return True

    def _wait(self, req, entry, key: bytes, stored: Stored | None, timeout: float) -> None:
        if stored is not None:
            stored.close()

        def resume(why: str) -> None:
            try:
                self.lookup(req, entry, key, why)
            except Exception:
                log.exception("the cache failed to resume %s %s", req.method,
                              req.target.decode("latin-1"))
                if not req.response_started and not req.completed:
                    req.error(500)
        self.collapser.wait(key, req, timeout, resume)

    def _background(self, req, entry, key: bytes, stored: Stored) -> None:
        """One revalidation in the background (stale-while-revalidate), if none runs."""
        fill = self.collapser.begin(key, entry.settings.cache_lock_timeout)
        if fill is None:
            return
        headers = [(name, value) for name, value in req.headers if name not in BACKGROUND_DROP]
        headers.extend(conditional_headers(stored.headers))
        self.forward(CacheExchange(self, entry, None, key, headers, method="GET",
                                   stored=stored, fwd="stale", fill=fill, origin=req))

    def forward(self, exchange: CacheExchange) -> None:
        exchange.forward = self.proxy.forward(exchange, exchange.entry)

    # -- invalidation and purge -------------------------------------------------------------
    def invalidate(self, keys: list[bytes]) -> None:
        for key in keys:
            self.store.invalidate(key)
            if self.log is not None:
                self.log.publish(key)
        self.sizes()

    def _purge(self, req, entry) -> None:
        if not allowed(req, self.shared.settings.purge_allow):
            req.error(403, "PURGE is not allowed from this address (CachePurgeAllow).",
                      [(b"Cache-Status", cache_status(detail="purge-denied"))])
            return
        key = self.key(req)
        if key is None:
            req.error(400, "PURGE needs a Host header to name the cached URI.")
            return
        removed = self.store.purge(key)
        if self.log is not None:
            self.log.publish(key)
        self.sizes()
        if not removed:
            req.error(404, "Nothing is cached for this URI.",
                      [(b"Cache-Status", cache_status(detail="not-cached"))])
            return
        self.stats.count(self.shared.slots[id(entry)], PURGED, removed)
        req.respond(200, [(b"Content-Type", b"text/plain; charset=utf-8"),
                          (b"Cache-Status", cache_status(detail="purged"))],
                    b"Purged %s\n" % key)


class CacheExchange:
    """The client's request as ``Forward`` sees it when the cache is on.

    It carries the request as forwarded (for a revalidation, the stored response's
    validators instead of the client's) and receives the upstream's answer: it stores
    the response while passing it on, or answers the client from the cache instead.
    ``client`` is None for a background revalidation (``origin`` then gives the client
    address for X-Forwarded-For).
    """

    __slots__ = ("cache", "entry", "client", "key", "headers", "method", "target", "host",
                 "content_length", "upgrade", "peer", "stored", "fwd", "fill",
                 "writer", "forward", "on_abort", "passing", "served", "finished",
                 "request_time", "_drain")

    def __init__(self, cache: ProxyCache, entry, client, key: bytes | None, headers,
                 *, method: str, fwd: str, stored: Stored | None = None,
                 fill: Fill | None = None, origin=None) -> None:
        source = client if client is not None else origin
        self.cache = cache
        self.entry = entry
        self.client = client
        self.key = key
        self.headers = headers
        self.method = method
        self.target = source.target
        self.host = source.host
        self.content_length = source.content_length if client is not None else 0
        self.upgrade = None
        self.peer = source.peer
        self.stored = stored
        self.fwd = fwd
        self.fill = fill
        self.writer = None
        self.forward = None
        self.on_abort = None
        self.passing = False
        self.served = False
        self.finished = False
        self.request_time = time.time()
        self._drain = None
        if client is not None:
            client.on_abort = self._client_gone

    # -- what Forward reads of a request -------------------------------------------------
    @property
    def has_body(self) -> bool:
        return self.content_length != 0

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def read_body(self, on_data, on_end, on_error=None) -> None:
        self.client.read_body(on_data, on_end, on_error)

    def pause_body(self) -> None:
        self.client.pause_body()

    def resume_body(self) -> None:
        self.client.resume_body()

    @property
    def on_drain(self):
        return self._drain

    @on_drain.setter
    def on_drain(self, callback) -> None:
        self._drain = callback
        if self.client is not None and self.passing:
            self.client.on_drain = callback

    # -- the upstream's answer -------------------------------------------------------------
    def start_response(self, status: int, headers, reason: bytes | None = None,
                       length: int | None = None) -> None:
        raw = self.forward.resp_headers if self.forward is not None else headers
        now = time.time()
        cache = self.cache
        if self.method not in SAFE:
            if self.key is not None:
                targets = invalidation_targets(self.method, status, self.key, raw)
                if targets:
                    cache.invalidate(targets)
        stored = self.stored
        if stored is not None:
            if status == 304 and not_modified_matches(stored.headers, raw):
                self._freshen(raw, now)
                return
            if status in UPSTREAM_ERRORS and self._stale_on_error(status, now):
                return
        request_headers = self.client.headers if self.client is not None else self.headers
        if self.method == "GET" and self.key is not None and storable(
                "GET", status, request_headers, raw) and worth_keeping(status, raw, now):
            self.writer = cache.store.begin(self.key, request_headers, Meta(
                status, storage_headers(raw), self.request_time, now))
        if self.client is None:
            if self.writer is None:
                self._stop()
            return
        if self.writer is None and self.fill is not None:
            # Nothing will be stored: the waiters go upstream now, in parallel.
            self.fill.done(False)
        self.passing = True
        self._result(MISSES)
        value = cache_status(fwd=self.fwd, fwd_status=status, stored=self.writer is not None)
        self.client.start_response(status, [*headers, (b"Cache-Status", value)], reason,
                                   length)

    def write(self, data: bytes) -> bool:
        writer = self.writer
        if writer is not None and not writer.write(data):
            # Larger than CacheMaxObjectSize (or an I/O error): it streams on uncached.
            self.writer = None
            if self.fill is not None:
                self.fill.done(False)
            if self.client is None:
                self._stop()
        if self.passing:
            return self.client.write(data)
        return True

    def end(self) -> None:
        if self.finished:
            return
        self.finished = True
        stored = False
        if self.writer is not None:
            stored = self.writer.commit()
            self.writer = None
            if stored:
                self.cache.count(self.entry, STORED)
            self.cache.sizes()
        if self.fill is not None:
            self.fill.done(stored)
        self._close_stored()
        if self.passing:
            self.client.end()

    def error(self, status: int, detail: str = "", headers=()) -> None:
        """An answer of the proxy's own (502, 503, 504, 508 ...): stale-if-error may
        stand in for it."""
        if self.finished:
            return
        if status in UPSTREAM_ERRORS and self.stored is not None and self._stale_on_error(
                None, time.time()):
            return
        self._drop()
        if self.client is not None:
            self._result(MISSES)
            self.client.error(status, detail, [*headers, (b"Cache-Status", cache_status(
                fwd=self.fwd))])

    def abort(self) -> None:
        passing = self.passing and not self.finished
        self._drop()
        if passing:
            self.client.abort()

    # -- outcomes ----------------------------------------------------------------------------
    def _freshen(self, raw, now: float) -> None:
        """A 304 to a revalidation: update the stored head, serve the stored response."""
        cache = self.cache
        stored = self.stored
        self.stored = None
        headers = updated_headers(stored.headers, raw)
        cache.store.update_headers(stored, headers, self.request_time, now)
        fresh = dataclasses.replace(stored, headers=headers, request_time=self.request_time,
                                    response_time=now)
        stored.fd = None
        cache.count(self.entry, REVALIDATED)
        self._result(MISSES)
        cache.sizes()
        if self.fill is not None:
            self.fill.done(True)
        if self.client is None:
            fresh.close()
            self.finished = True
            return
        summary = cache.summaries.get(fresh)
        age = summary.age(now)
        self.served = True
        self.finished = True
        serve(self.client, fresh, summary, age, cache_status(
            fwd=self.fwd, fwd_status=304, ttl=summary.lifetime - age))

    def _stale_on_error(self, status: int | None, now: float) -> bool:
        """Serve the stale stored response in place of an upstream error, if allowed."""
        stored = self.stored
        request_headers = self.client.headers if self.client is not None else self.headers
        if not stale_if_error_allows(stored, now, request_headers):
            return False
        self.stored = None
        if self.fill is not None:
            self.fill.done(False)
        self.finished = True
        if self.client is None:
            stored.close()
            return True
        cache = self.cache
        summary = cache.summaries.get(stored)
        age = summary.age(now)
        self._result(STALE)
        self.served = True
        serve(self.client, stored, summary, age, cache_status(
            fwd="stale", fwd_status=status, ttl=summary.lifetime - age,
            detail="stale-if-error"))
        return True

    def _result(self, counter: int) -> None:
        """Count the answer a client got to a GET or HEAD: miss or stale."""
        if self.client is not None and self.method in ("GET", "HEAD"):
            self.cache.count(self.entry, counter)

    def _drop(self) -> None:
        """The exchange ends without a stored response."""
        self.finished = True
        if self.writer is not None:
            self.writer.abort()
            self.writer = None
        if self.fill is not None:
            self.fill.done(False)
        self._close_stored()

    def _close_stored(self) -> None:
        if self.stored is not None:
            self.stored.close()
            self.stored = None

    def _stop(self) -> None:
        """A background fetch that will store nothing: drop the upstream connection."""
        self._drop()
        callback = self.on_abort
        if callback is not None:
            self.cache.loop.call_soon(callback)

    def _client_gone(self) -> None:
        """The client left: a fill that is storing goes on without it, for its waiters."""
        if self.fill is not None and not self.finished and (
                self.writer is not None or not self.passing) and self.fill.waiters:
            self.client = None
            self.passing = False
            drain, self._drain = self._drain, None
            if drain is not None:
                self.cache.loop.call_soon(drain)
            return
        self._drop()
        callback = self.on_abort
        if callback is not None:
            callback()

