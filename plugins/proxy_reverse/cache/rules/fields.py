"""Header fields the cache keeps, and those it writes when it serves (Age, Cache-Status).

What is stored (RFC 9111 §3.1): the upstream's fields as received, less the hop-by-hop
ones (``Connection`` and the fields it names, ``Keep-Alive``, ``TE``, ``Trailer``,
``Transfer-Encoding``, ``Upgrade``) and ``Proxy-*``. ``Set-Cookie`` is stored and
replayed like any other field (§7.3: it does not inhibit caching). Date, Age and
Content-Length are kept: the age calculation and the body check need them.
"""

from __future__ import annotations

import math
import re

from monkey_py.static.conditional import http_date

from ...forwarding.headers import HOP_BY_HOP, connection_tokens
from .control import MAX_DELTA, Headers, has_header

UNSTORED = HOP_BY_HOP
# Fields a 304 sent to the client carries (RFC 9110 §15.4.5).
NOT_MODIFIED_FIELDS = frozenset({
    b"cache-control", b"content-location", b"date", b"etag", b"expires", b"vary",
})
CACHE_NAME = "monkey_py"
_SF_TOKEN = re.compile(r"[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*")


def connection_named(headers: Headers) -> frozenset[bytes]:
    """The lower-case field names listed in the message's Connection header."""
    return connection_tokens(headers)


def storage_headers(response_headers: Headers, received: float | None = None
                    ) -> list[tuple[bytes, bytes]]:
    """The upstream response's fields as the cache stores them (module notes). A
    response without Date gets one for ``received``, the time it arrived, as RFC 9110
    §6.6.1 asks of a recipient that caches it."""
    named = connection_named(response_headers)
    kept = [
        (name, value) for name, value in response_headers
        if not ((lowered := name.lower()) in UNSTORED or lowered in named
                or lowered.startswith(b"proxy-"))
    ]
    if received is not None and not has_header(kept, b"date"):
        kept.append((b"Date", http_date(received).encode("ascii")))
    return kept


def age_header(age: float) -> bytes:
    """The Age field value for a current age in seconds (whole seconds, at most 2^31)."""
    return b"%d" % min(max(int(age), 0), MAX_DELTA)


def _sf_bare(text: str) -> str:
    """A Structured Field token when ``text`` is one, else a quoted sf-string."""
    if _SF_TOKEN.fullmatch(text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def cache_status(*, hit: bool = False, fwd: str | None = None, fwd_status: int | None = None,
                 ttl: float | None = None, stored: bool = False, collapsed: bool = False,
                 key: str | None = None, detail: str | None = None,
                 name: str = CACHE_NAME) -> bytes:
    """One RFC 9211 Cache-Status member for this cache.

    ``hit`` when served without going upstream; ``fwd`` (``bypass``, ``method``,
    ``uri-miss``, ``vary-miss``, ``miss``, ``request``, ``stale``, ``partial``) when it
    went upstream; ``ttl`` the remaining freshness (negative when stale); ``stored`` when
    the upstream's answer was stored. Examples: ``monkey_py; hit; ttl=60``,
    ``monkey_py; fwd=miss; stored``, ``monkey_py; fwd=stale; fwd-status=304; ttl=60``,
    ``monkey_py; hit; ttl=-5; detail=stale-while-revalidate``.
    """
    parts = [_sf_bare(name)]
    if hit:
        parts.append("hit")
    if fwd is not None:
        parts.append(f"fwd={fwd}")
    if fwd_status is not None:
        parts.append(f"fwd-status={int(fwd_status)}")
    if ttl is not None:
        parts.append(f"ttl={math.floor(ttl)}")
    if stored:
        parts.append("stored")
    if collapsed:
        parts.append("collapsed")
    if key is not None:
        escaped = key.replace("\\", "\\\\").replace('"', '\\"')
        parts.append(f'key="{escaped}"')
    if detail is not None:
        parts.append(f"detail={_sf_bare(detail)}")
    return "; ".join(parts).encode("latin-1")
