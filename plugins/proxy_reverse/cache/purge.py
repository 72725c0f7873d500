"""PURGE: remove a URI's stored responses and say what happened in every worker
(docs/proxy_cache.md, Purge).

With the disk store, or one worker, the store the answering worker removes from is the
only one. With memory stores and several workers, the key goes into the invalidation
log (``sync.py``); the answering worker applies it at once and then waits, on its loop
(a timer, never blocking), until every live worker has applied it too and written
whether it held the key, at most ``PURGE_WAIT`` seconds. The status then speaks for
all of them: 200 when any removed something, 404 when none held it, and 202 when
nothing was removed so far but a worker did not confirm in time (it removes the key
before it serves its next request all the same).

A PURGE removes the URI in both schemes (``http`` and ``https``, which the cache keys
apart): one origin answers both, and the operator names the resource, not the scheme.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..status.serve import allowed
from .figures import PURGED
from .rules.key import both_schemes
from .rules.fields import cache_status
from .sync import Outcome

if TYPE_CHECKING:
    from .front import ProxyCache

PURGE_WAIT = 2.0
WAIT_POLL = 0.01


def purge(cache: ProxyCache, req, entry) -> None:
    """Answer a PURGE for a target that cache-enabled ``entry`` matches."""
    if not allowed(req, cache.shared.settings.purge_allow):
        req.error(403, "PURGE is not allowed from this address (CachePurgeAllow).",
                  [(b"Cache-Status", cache_status(detail="purge-denied"))])
        return
    key = cache.key(req)
    if key is None:
        req.error(400, "PURGE needs a Host header to name the cached URI.")
        return
    keys = both_schemes(key)
    if cache.remote is not None:
        _purge_shared(cache, req, entry, keys)
        return
    log = cache.log
    if log is None:
        removed = sum(cache.store.purge(each) for each in keys)
        cache.sizes()
        _answer(cache, req, entry, key, Outcome(removed=removed, confirmed=1))
        return
    numbers = [log.publish(each) for each in keys]
    log.poll(cache.remove)
    _Waiting(cache, req, entry, key, numbers).check()


def _purge_shared(cache: ProxyCache, req, entry, keys: tuple[bytes, ...]) -> None:
    """The Redis store: remove ``keys`` in Redis, which tells every instance's memory
    tier; the answer counts what Redis and this worker's tier held. When Redis cannot be
    reached the shared copies stay: the answer (202) says so, to be repeated."""
    local = sum(cache.store.purge(each) for each in keys)
    cache.sizes()
    results = []

    def answered(removed, error) -> None:
        results.append((removed, error))
        if len(results) < len(keys) or req.finished:
            return
        errors = [error for _, error in results if error is not None]
        try:
            _answer_shared(cache, req, entry, keys[0], local,
                           sum(removed or 0 for removed, _ in results),
                           errors[0] if errors else None)
        except Exception:
            cache.crashed(req)
    for each in keys:
        cache.remote.drop(each, answered)


def _answer_shared(cache: ProxyCache, req, entry, key: bytes, local: int, removed,
                   error) -> None:
    """Redis removed ``removed`` responses (the answering worker's tier ``local``), or
    could not be reached (``error``)."""
    if error is None:
        _answer(cache, req, entry, key, Outcome(removed=max(removed, local), confirmed=1))
        return
    req.respond(202, [(b"Content-Type", b"text/plain; charset=utf-8"),
                      (b"Cache-Status", cache_status(detail="purge-pending"))],
                b"Purged %s from this worker (%d response(s)); the shared cache in "
                b"Redis could not be reached (%s): repeat the PURGE once it is back\n"
                % (key, local, str(error).encode("utf-8", "replace")))


class _Waiting:
    """A PURGE answer waiting for the other workers' results."""

    __slots__ = ("cache", "req", "entry", "key", "numbers", "deadline", "timer")

    def __init__(self, cache: ProxyCache, req, entry, key: bytes, numbers: list[int]) -> None:
        self.cache = cache
        self.req = req
        self.entry = entry
        self.key = key
        self.numbers = numbers
        self.deadline = cache.loop.time() + PURGE_WAIT
        self.timer = None
        req.on_abort = self.cancel

    def check(self) -> None:
        self.timer = None
        outcomes = [self.cache.log.outcome(number) for number in self.numbers]
        outcome = Outcome(removed=sum(found.removed for found in outcomes),
                          confirmed=min(found.confirmed for found in outcomes),
                          pending=max(found.pending for found in outcomes),
                          emptied=max(found.emptied for found in outcomes))
        loop = self.cache.loop
        if outcome.pending and loop.time() < self.deadline:
            self.timer = loop.call_later(WAIT_POLL, self.check)
            return
        self.req.on_abort = None
        _answer(self.cache, self.req, self.entry, self.key, outcome)

    def cancel(self) -> None:
        """The client left: stop waiting (the purge itself goes on in every worker)."""
        if self.timer is not None:
            self.cache.loop.cancel(self.timer)
            self.timer = None


def _answer(cache: ProxyCache, req, entry, key: bytes, outcome: Outcome) -> None:
    if outcome.removed:
        cache.count(entry, PURGED, outcome.removed)
    workers = outcome.confirmed + outcome.pending
    if outcome.removed or outcome.emptied:
        lines = [b"Purged %s" % key,
                 b"%d response(s) removed in %d of %d worker(s)" % (
                     outcome.removed, outcome.confirmed, workers)]
        if outcome.emptied:
            lines.append(b"%d worker(s) fell behind the log and emptied their store"
                         % outcome.emptied)
        if outcome.pending:
            lines.append(b"%d of %d worker(s) did not confirm within %g s" % (
                outcome.pending, workers, PURGE_WAIT))
        req.respond(200, [(b"Content-Type", b"text/plain; charset=utf-8"),
                          (b"Cache-Status", cache_status(detail="purged"))],
                    b"\n".join(lines) + b"\n")
    elif outcome.pending:
        req.respond(202, [(b"Content-Type", b"text/plain; charset=utf-8"),
                          (b"Cache-Status", cache_status(detail="purge-pending"))],
                    b"Purge of %s published; %d of %d worker(s) did not confirm within "
                    b"%g s\n" % (key, outcome.pending, workers, PURGE_WAIT))
    else:
        req.error(404, "Nothing is cached for this URI.",
                  [(b"Cache-Status", cache_status(detail="not-cached"))])
