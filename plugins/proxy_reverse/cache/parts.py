"""Range requests answered from a stored partial response (206), when the complete
response is not stored (docs/proxy_cache.md, Serving from the cache; ``rules/partial.py``
says which parts are kept and which requests they answer)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from monkey_py.static.conditional import if_range_allows

from .figures import COLLAPSED, HITS
from .rules.fields import cache_status
from .rules.partial import partial_key, stored_span, wanted_within
from .rules.policy import Action, decide
from .serve import serve_part
from .stores.store import Stored

if TYPE_CHECKING:
    from .front import ProxyCache


def serve_stored_part(cache: ProxyCache, req, entry, key: bytes, waited: str | None,
                      fetched: Stored | None = None) -> bool:
    """Serve ``req``'s one range from the resource's stored part if it lies within it,
    the part is fresh for this request and an ``If-Range`` matches; False otherwise
    (the request then goes on as a miss). ``fetched``: the part as a store that answers
    through callbacks (Redis) found it, when its memory tier has none."""
    range_value = req.header(b"range")
    if range_value is None or req.method != "GET":
        return False
    stored = cache.store.lookup(partial_key(key), req.headers) or fetched
    if stored is None:
        return False
    if stored.fd is not None and cache.verifier is not None:
        cache.verifier.check(stored)
    span = stored_span(stored.headers)
    wanted = None if span is None else wanted_within(range_value, span)
    summary = cache.summaries.get(stored)
    decision = decide("GET", req.headers, stored, time.time(), cache.targets)
    if wanted is None or decision.action is not Action.FRESH or not if_range_allows(
            req.header(b"if-range"), summary.etag, summary.modified):
        stored.close()
        return False
    cache.count(entry, HITS)
    if waited is not None:
        cache.count(entry, COLLAPSED)
    serve_part(req, stored, summary, wanted, span, decision.age, cache_status(
        hit=True, ttl=decision.ttl, collapsed=waited is not None))
    return True
