"""The cache's side of a request that goes upstream (docs/proxy_cache.md).

A ``CacheExchange`` stands in for the client's request in the ordinary ``Forward``: it
sees the upstream's answer before the client does, stores it as it streams, turns a
304 to a revalidation into the stored response, serves a stale response when the
upstream fails (stale-if-error), invalidates after unsafe methods, and adds
``Cache-Status`` (RFC 9211). A background revalidation (stale-while-revalidate) is a
``CacheExchange`` without a client.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

from monkey_py.static.conditional import http_date

from .collapse import Fill
from .figures import MISSES, REVALIDATED, STALE, STORED
from .rules.control import has_header, header_value, response_cache_control
from .rules.fields import cache_status, storage_headers
from .rules.partial import partial_key
from .rules.policy import (
    freshness_lifetime,
    invalidation_targets,
    stale_if_error_allows,
    storable,
)
from .rules.validation import not_modified_matches, updated_headers
from .serve import serve
from .stores.store import Meta, Stored

if TYPE_CHECKING:
    from .front import ProxyCache

UPSTREAM_ERRORS = frozenset({500, 502, 503, 504})
SAFE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def worth_keeping(status: int, headers, now: float, targets=()) -> bool:
    """Whether a storable response could ever be reused: it is fresh for a while, can
    be revalidated (ETag, Last-Modified) or may be served stale (stale-if-error). One
    without any of these would only take space."""
    if freshness_lifetime(status, headers, now, targets) > 0:
        return True
    if header_value(headers, b"etag") is not None or (
            header_value(headers, b"last-modified") is not None):
        return True
    return "stale-if-error" in response_cache_control(headers, targets)


def origin_date(block: bytes, raw, now: float) -> bytes:
    """The response's header block with the upstream's Date (the time it arrived when it
    sent none), unless the block has a Date line already (RFC 9110 §6.6.1)."""
    if block.startswith(b"Date: ") or b"\r\nDate: " in block:
        return block
    value = header_value(raw, b"date")
    return b"Date: %s\r\n" % (value or http_date(now).encode("ascii")) + block


def _sets_cookies(headers) -> bool:
    """Whether the response carries Set-Cookie or Set-Cookie2 (CacheSkipSetCookie)."""
    return has_header(headers, b"set-cookie") or has_header(headers, b"set-cookie2")


class CacheExchange:
    """The client's request as ``Forward`` sees it when the cache is on.

    It carries the request as forwarded (for a revalidation, the stored response's
    validators instead of the client's) and receives the upstream's answer: it stores
    the response while passing it on, or answers the client from the cache instead.
    ``client`` is None for a background revalidation (``origin`` then gives the client
    address for X-Forwarded-For).
    """

    __slots__ = ("cache", "entry", "client", "key", "headers", "method", "target", "host",
                 "content_length", "upgrade", "peer", "secure", "stored", "fwd", "fill",
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
        self.secure = source.secure
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
    def inform(self, status: int, headers: bytes = b"") -> None:
        """An interim (1xx) answer: passed on to the client that leads the fetch, never
        stored. The requests collapsed onto the fetch get none: they are served the
        stored response afterwards, as any hit."""
        if self.client is not None:
            self.client.inform(status, headers)

    def start_response(self, status: int, headers, reason: bytes | None = None,
                       length: int | None = None) -> None:
        raw = self.forward.response_headers
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
        settings = cache.shared.settings
        targets = settings.targeted_fields
        if self.method == "GET" and self.key is not None and storable(
                "GET", status, request_headers, raw, targets) and worth_keeping(
                status, raw, now, targets) and (
                not settings.skip_set_cookie or not _sets_cookies(raw)):
            key = self.key if status != 206 else partial_key(self.key)
            self.writer = cache.store.begin(key, request_headers, Meta(
                status, storage_headers(raw, now), self.request_time, now))
            if self.writer is None:
                cache.sizes()  # a write that failed shows in the store's figures
        if self.client is None:
            if self.writer is None:
                self._stop(failed=status in UPSTREAM_ERRORS)
            return
        if self.writer is None and self.fill is not None:
            # Nothing will be stored: the waiters go upstream now, in parallel (or stand
            # a stale response in for an upstream error).
            self.fill.done(False, failed=status in UPSTREAM_ERRORS)
        self.passing = True
        self._result(MISSES)
        value = cache_status(fwd=self.fwd, fwd_status=status, stored=self.writer is not None)
        headers = origin_date(headers, raw, now)
        self.client.start_response(status, headers + b"Cache-Status: %s\r\n" % value, reason,
                                   length)
        if self.client.method == "HEAD" and self.method == "GET":
            self._head_answered()

    def _head_answered(self) -> None:
        """A HEAD that went upstream as a GET to fill the cache has its answer: the
        body goes on into the store without it, or is not fetched when not stored."""
        client = self.client
        self.client = None
        self.passing = False
        client.on_abort = None
        client.end()
        if self.writer is None:
            self._stop()

    def write(self, data: bytes) -> bool:
        writer = self.writer
        if writer is not None and not writer.write(data):
            # Larger than CacheMaxObjectSize (or an I/O error): it streams on uncached.
            self.writer = None
            self.cache.sizes()
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
        self._drop(failed=status in UPSTREAM_ERRORS)
        if self.client is not None:
            self._result(MISSES)
            self.client.error(status, detail, [*headers, (b"Cache-Status", cache_status(
                fwd=self.fwd))])

    def abort(self) -> None:
        passing = self.passing and not self.finished
        self._drop()
        if passing:
            self.client.abort()

    def crashed(self) -> None:
        """A failure of our own (or of a balancer) on the way upstream: end without
        storing, release the waiters, and answer 500 if the client has nothing yet."""
        if self.finished:
            return
        passing = self.passing
        self._drop()
        client = self.client
        if client is None or client.finished:
            return
        if passing or client.response_started:
            client.abort()
        else:
            self._result(MISSES)
            client.error(500, "The proxy failed on this request.",
                         [(b"Cache-Status", cache_status(fwd=self.fwd))])

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
        if not stale_if_error_allows(stored, now, request_headers,
                                     self.cache.shared.settings.targeted_fields):
            return False
        self.stored = None
        if self.fill is not None:
            self.fill.done(False, failed=True)
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

    def _drop(self, failed: bool = False) -> None:
        """The exchange ends without a stored response (``failed``: for an upstream
        error)."""
        self.finished = True
        if self.writer is not None:
            self.writer.abort()
            self.writer = None
        if self.fill is not None:
            self.fill.done(False, failed)
        self._close_stored()

    def _close_stored(self) -> None:
        if self.stored is not None:
            self.stored.close()
            self.stored = None

    def _stop(self, failed: bool = False) -> None:
        """A fetch no client reads that will store nothing: drop the upstream connection."""
        self._drop(failed)
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

