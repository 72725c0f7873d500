"""When a shared cache may store a response and reuse it (RFC 9111 §3, §4, RFC 5861).

Sans-IO: every function takes the time it needs as an argument and reads no clock.
Times are POSIX seconds (floats). A stored response is anything with ``status``,
``headers`` (as received from the upstream), ``request_time`` and ``response_time``.

Decisions this cache makes where the RFC leaves a choice:

- Methods: only GET responses are stored; HEAD is answered from a stored GET response,
  its own responses are never stored. 304 is never stored; a 206 only as a single part
  whose bytes its Content-Range names exactly (``partial.py``).
- Set-Cookie does not prevent storing (§7.3): such a response is stored and replayed
  with its cookies. An origin keeps a cookie to one client with ``private`` (or
  ``no-cache``); a site may refuse them all with ``CacheSkipSetCookie`` (the front end
  decides that, not these rules).
- ``no-cache`` and ``private`` with field names are treated as their unqualified forms:
  ``private="x"`` is not stored, ``no-cache="x"`` is revalidated on every use.
- Heuristic freshness (§4.2.2): 10% of the time between Last-Modified and Date, capped
  at one day, only without explicit expiration and only for heuristically cacheable
  status codes or ``public`` responses. A query string does not prevent it (the
  RFC 2616 rule was dropped).
- ``immutable`` (RFC 8246 §2.1): a fresh immutable response is served to a request
  whose ``max-age`` asks for a younger one (a browser's reload) without revalidation;
  ``no-cache`` in the request (a forced reload) still revalidates, and so does a stale
  immutable response. Only for bodies stored with a Content-Length (RFC 8246 §3).
- stale-while-revalidate is honoured only within its window and serves the stale
  response while one revalidation runs in the background; stale-if-error serves within
  the window of either the response's or the request's directive. must-revalidate,
  proxy-revalidate, s-maxage and no-cache forbid serving stale in every case (§4.2.4).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from . import key as keys
from .partial import stored_span
from .control import (
    CacheControl,
    Headers,
    age_value,
    date_value,
    expires,
    has_header,
    header_value,
    last_modified,
    list_tokens,
    request_cache_control,
    response_cache_control,
)

# Status codes defined as heuristically cacheable (RFC 9110 §15.1).
HEURISTIC_STATUSES = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
# Status codes whose caching requirements this cache implements (for must-understand).
UNDERSTOOD_STATUSES = HEURISTIC_STATUSES | {302, 303, 307}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
HEURISTIC_FRACTION = 0.1
HEURISTIC_CAP = 86400.0
# Response directives that allow a shared cache to reuse a response to a request with
# Authorization (RFC 9111 §3.5).
_AUTHORIZED_SHARING = ("public", "s-maxage", "must-revalidate")


class StoredResponse(Protocol):
    """What the policy reads of a stored response."""

    status: int
    headers: Headers
    request_time: float
    response_time: float


class Action(enum.Enum):
    """What to do with a request, given the stored response found for it (if any)."""

    FRESH = "fresh"  # serve the stored response
    STALE_OK = "stale"  # serve the stale stored response (see Decision.background)
    REVALIDATE = "revalidate"  # forward with conditional_headers(stored)
    MISS = "miss"  # forward; the answer may be stored
    GATEWAY_TIMEOUT = "only-if-cached"  # answer 504: only-if-cached and nothing usable


@dataclass(frozen=True)
class Decision:
    """The outcome of ``decide``.

    ``reason`` is a short token saying why (``fresh``, ``max-stale``,
    ``stale-while-revalidate``, ``stale``, ``no-cache``, ``must-revalidate``,
    ``request-no-cache``, ``request-max-age``, ``min-fresh``, ``authorization``,
    ``method``, ``not-stored``, ``only-if-cached``). ``age`` and ``lifetime`` are the
    stored response's current age and freshness lifetime (0 without one); ``background``
    is set on STALE_OK from stale-while-revalidate: serve, then revalidate in the
    background. ``fwd`` is the RFC 9211 ``fwd`` reason when the request goes upstream.
    """

    action: Action
    reason: str
    age: float = 0.0
    lifetime: float = 0.0
    background: bool = False
    fwd: str | None = None

    @property
    def ttl(self) -> float:
        """Remaining freshness in seconds, negative when stale."""
        return self.lifetime - self.age


def storage_allowed_for_request(method: str, request_headers: Headers) -> bool:
    """Whether a response to this request may be stored at all: GET without request
    ``no-store``. (A cheap first check before the response arrives.)"""
    return method == "GET" and "no-store" not in request_cache_control(request_headers)


def storable(method: str, status: int, request_headers: Headers,
             response_headers: Headers, targets: Sequence[bytes] = ()) -> bool:
    """Whether a shared cache may store this response (RFC 9111 §3, §3.5; module notes).

    ``targets``: the targeted cache-control fields this cache obeys (RFC 9213), lower-case,
    in order of precedence; the same in every function here that reads the response's
    directives."""
    if not storage_allowed_for_request(method, request_headers):
        return False
    if not 200 <= status <= 599 or status == 304:
        return False
    if status == 206 and (stored_span(response_headers) is None
                          or not has_header(request_headers, b"range")):
        return False
    cc = response_cache_control(response_headers, targets)
    understood = status in UNDERSTOOD_STATUSES
    if "must-understand" in cc:
        if not understood:
            return False
    elif "no-store" in cc:
        return False
    if "private" in cc:
        return False
    if keys.vary_names(response_headers) is None:
        return False
    if list_tokens(response_headers, b"transfer-encoding") not in ([], [b"chunked"]):
        # A transfer coding other than chunked is not undone here: the body as received
        # is still coded, and stored without the header that says so it would be wrong.
        return False
    if has_header(request_headers, b"authorization") and not any(
        name in cc for name in _AUTHORIZED_SHARING
    ):
        return False
    return (
        "public" in cc
        or "max-age" in cc
        or "s-maxage" in cc
        or (not cc.targeted and has_header(response_headers, b"expires"))
        or status in HEURISTIC_STATUSES
    )


def freshness_lifetime(status: int, response_headers: Headers, response_time: float,
                       targets: Sequence[bytes] = ()) -> float:
    """The freshness lifetime in seconds (RFC 9111 §4.2.1), 0 when there is none.

    s-maxage (shared cache), then max-age, then Expires minus Date (the time the response
    was received when Date is missing or invalid); without any of them, the heuristic of
    ``heuristic_lifetime``. A targeted field in effect sets Expires aside (RFC 9213).
    """
    cc = response_cache_control(response_headers, targets)
    seconds = cc.seconds("s-maxage")
    if seconds is not None:
        return float(seconds)
    seconds = cc.seconds("max-age")
    if seconds is not None:
        return float(seconds)
    expiry = None if cc.targeted else expires(response_headers)
    date = date_value(response_headers)
    if date is None:
        date = response_time
    if expiry is not None:
        return max(0.0, expiry - date)
    return heuristic_lifetime(status, cc, response_headers, date)


def heuristic_lifetime(status: int, cc: CacheControl, response_headers: Headers,
                       date: float) -> float:
    """10% of (Date - Last-Modified), at most a day; 0 unless the status is heuristically
    cacheable or the response is ``public`` (RFC 9111 §4.2.2), or without Last-Modified."""
    if status not in HEURISTIC_STATUSES and "public" not in cc:
        return 0.0
    modified = last_modified(response_headers)
    if modified is None or modified >= date:
        return 0.0
    return min((date - modified) * HEURISTIC_FRACTION, HEURISTIC_CAP)


def current_age(stored: StoredResponse, now: float) -> float:
    """The stored response's current age in seconds (RFC 9111 §4.2.3)."""
    date = date_value(stored.headers)
    if date is None:
        date = stored.response_time
    apparent_age = max(0.0, stored.response_time - date)
    response_delay = max(0.0, stored.response_time - stored.request_time)
    corrected_age_value = age_value(stored.headers) + response_delay
    corrected_initial_age = max(apparent_age, corrected_age_value)
    resident_time = max(0.0, now - stored.response_time)
    return corrected_initial_age + resident_time


def _immutable(cc: CacheControl, headers: Headers) -> bool:
    """An ``immutable`` response (RFC 8246) whose stored size is known to be whole: a
    reload (request ``max-age``) does not revalidate it while it is fresh; a request's
    ``no-cache`` still does. A body without Content-Length (close-delimited, or
    chunked: the stored head no longer tells) is not taken for immutable (§3)."""
    return "immutable" in cc and has_header(headers, b"content-length")


def _forbids_stale(cc: CacheControl) -> bool:
    """Response directives under which a shared cache never serves a stale response."""
    return ("must-revalidate" in cc or "proxy-revalidate" in cc or "s-maxage" in cc
            or "no-cache" in cc)


def decide(method: str, request_headers: Headers, stored: StoredResponse | None,
           now: float, targets: Sequence[bytes] = ()) -> Decision:
    """How to answer a request given the stored response selected for it (RFC 9111 §4).

    Non-GET/HEAD requests always go upstream (MISS, ``fwd=method``). With a stored
    response, in order: Authorization without a directive allowing shared reuse is a
    MISS; response ``no-cache`` and request ``no-cache`` (or ``Pragma: no-cache``),
    ``max-age`` and ``min-fresh`` call for REVALIDATE; a fresh response is FRESH; a stale
    one is REVALIDATE under must-revalidate, proxy-revalidate or s-maxage, else STALE_OK
    within stale-while-revalidate (background revalidation) or the request's
    ``max-stale``, else REVALIDATE. Whenever the request would go upstream and it says
    ``only-if-cached``, the answer is GATEWAY_TIMEOUT instead.
    """
    if method not in ("GET", "HEAD"):
        return Decision(Action.MISS, "method", fwd="method")
    rcc = request_cache_control(request_headers)
    only_cached = "only-if-cached" in rcc
    if stored is None:
        if only_cached:
            return Decision(Action.GATEWAY_TIMEOUT, "only-if-cached")
        return Decision(Action.MISS, "not-stored", fwd="miss")
    cc = response_cache_control(stored.headers, targets)
    age = current_age(stored, now)
    lifetime = freshness_lifetime(stored.status, stored.headers, stored.response_time,
                                  targets)

    def upstream(action: Action, reason: str, fwd: str) -> Decision:
        if only_cached:
            return Decision(Action.GATEWAY_TIMEOUT, "only-if-cached", age, lifetime)
        return Decision(action, reason, age, lifetime, fwd=fwd)

    if has_header(request_headers, b"authorization") and not any(
        name in cc for name in _AUTHORIZED_SHARING
    ):
        return upstream(Action.MISS, "authorization", "miss")
    if "no-cache" in cc:
        return upstream(Action.REVALIDATE, "no-cache", "stale")
    if "no-cache" in rcc:
        return upstream(Action.REVALIDATE, "request-no-cache", "request")
    max_age = rcc.seconds("max-age")
    if max_age is not None and age > max_age and not (
            lifetime > age and _immutable(cc, stored.headers)):
        return upstream(Action.REVALIDATE, "request-max-age", "request")
    min_fresh = rcc.seconds("min-fresh")
    if min_fresh is not None and lifetime - age < min_fresh:
        return upstream(Action.REVALIDATE, "min-fresh", "request")
    if lifetime > age:
        return Decision(Action.FRESH, "fresh", age, lifetime)
    staleness = age - lifetime
    if _forbids_stale(cc):
        return upstream(Action.REVALIDATE, "must-revalidate", "stale")
    window = cc.seconds("stale-while-revalidate")
    if window is not None and staleness <= window:
        return Decision(Action.STALE_OK, "stale-while-revalidate", age, lifetime,
                        background=True)
    if "max-stale" in rcc:
        allowance = rcc.value("max-stale")
        if allowance is None or staleness <= rcc.seconds("max-stale"):
            return Decision(Action.STALE_OK, "max-stale", age, lifetime)
    return upstream(Action.REVALIDATE, "stale", "stale")


def stale_if_error_allows(stored: StoredResponse, now: float, request_headers: Headers,
                          targets: Sequence[bytes] = ()) -> bool:
    """Whether the stored response may stand in for an upstream error (RFC 5861 §4).

    An error is a failure to reach the upstream or a 500, 502, 503 or 504 from it. The
    response's or the request's ``stale-if-error=N`` allows it while the response has
    been stale for at most N seconds; must-revalidate, proxy-revalidate, s-maxage and
    no-cache forbid it (RFC 9111 §4.2.4).
    """
    cc = response_cache_control(stored.headers, targets)
    if _forbids_stale(cc):
        return False
    staleness = current_age(stored, now) - freshness_lifetime(
        stored.status, stored.headers, stored.response_time, targets)
    rcc = request_cache_control(request_headers)
    for window in (cc.seconds("stale-if-error"), rcc.seconds("stale-if-error")):
        if window is not None and staleness <= window:
            return True
    return False


def invalidation_targets(method: str, status: int, request_key: bytes,
                         response_headers: Headers) -> list[bytes]:
    """The primary keys to invalidate after an unsafe request (RFC 9111 §4.4).

    Any method other than GET, HEAD, OPTIONS and TRACE is unsafe. Only a non-error
    answer (2xx, 3xx) invalidates: the target URI ``request_key`` (a primary key), and
    the Location and Content-Location URIs (resolved against it) when they have the
    same origin (scheme, host and port); each also in the other scheme (``https`` for
    ``http``), which the cache keys apart but the same server answers.
    """
    if method in SAFE_METHODS or not 200 <= status < 400:
        return []
    targets = [request_key]
    own_origin = keys.origin(request_key)
    for name in (b"location", b"content-location"):
        value = header_value(response_headers, name)
        if value is None:
            continue
        target = keys.resolve(request_key, value)
        if target is not None and keys.origin(target) == own_origin and target not in targets:
            targets.append(target)
    # The same resources reached in the other scheme are the same origin's, changed too.
    return [key for target in targets for key in keys.both_schemes(target)]
