"""Storing, freshness, age and reuse decisions of the shared cache (RFC 9111, RFC 5861)."""

from __future__ import annotations

import pytest

from monkey_py.static.conditional import http_date
from monkey_py_plugins.proxy_reverse.cache.rules.policy import (
    HEURISTIC_CAP,
    Action,
    current_age,
    decide,
    freshness_lifetime,
    invalidation_targets,
    stale_if_error_allows,
    storable,
    storage_allowed_for_request,
)
from monkey_py_plugins.proxy_reverse.cache.stores.store import Meta

T0 = 1_700_000_000.0


def response(*fields: tuple[str, str], status: int = 200, request_time: float = T0,
             response_time: float = T0, date: float | None = T0) -> Meta:
    """A stored response received at ``response_time`` with a Date of ``date``."""
    headers = [(name.encode(), value.encode()) for name, value in fields]
    if date is not None:
        headers.insert(0, (b"Date", http_date(date).encode()))
    return Meta(status, headers, request_time, response_time)


def req(*fields: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in fields]


def can_store(*fields: tuple[str, str], status: int = 200, method: str = "GET",
              request: list | None = None) -> bool:
    return storable(method, status, request or [],
                    [(name.encode(), value.encode()) for name, value in fields])


# -- storable ---------------------------------------------------------------------------
@pytest.mark.parametrize("status", [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501])
def test_heuristically_cacheable_statuses_are_storable_without_directives(status) -> None:
    assert can_store(status=status)


@pytest.mark.parametrize("status", [302, 303, 307, 400, 403, 500, 502, 503])
def test_other_statuses_need_explicit_freshness(status) -> None:
    assert not can_store(status=status)
    assert can_store(("Cache-Control", "max-age=60"), status=status)
    assert can_store(("Cache-Control", "s-maxage=60"), status=status)
    assert can_store(("Cache-Control", "public"), status=status)
    assert can_store(("Expires", "Thu, 01 Jan 2099 00:00:00 GMT"), status=status)


@pytest.mark.parametrize("status", [100, 101, 206, 304, 600])
def test_never_stored_statuses(status) -> None:
    assert not can_store(("Cache-Control", "public, max-age=60"), status=status)


def test_only_get_responses_are_stored() -> None:
    assert not can_store(("Cache-Control", "max-age=60"), method="HEAD")
    assert not can_store(("Cache-Control", "max-age=60"), method="POST")
    assert storage_allowed_for_request("GET", [])
    assert not storage_allowed_for_request("HEAD", [])


def test_response_no_store() -> None:
    assert not can_store(("Cache-Control", "no-store, max-age=60"))
    assert not can_store(("Cache-Control", "max-age=60"), ("Cache-Control", "NO-STORE"))


def test_request_no_store() -> None:
    request = req(("Cache-Control", "no-store"))
    assert not storage_allowed_for_request("GET", request)
    assert not can_store(("Cache-Control", "max-age=60"), request=request)


def test_must_understand_overrides_no_store_for_understood_statuses() -> None:
    assert can_store(("Cache-Control", "must-understand, no-store, max-age=60"))
    assert not can_store(("Cache-Control", "must-understand, no-store, max-age=60"),
                         status=500)
    assert not can_store(("Cache-Control", "must-understand, max-age=60"), status=418)


def test_private_is_never_stored_by_a_shared_cache() -> None:
    assert not can_store(("Cache-Control", "private, max-age=60"))
    assert not can_store(("Cache-Control", 'private="Set-Cookie", max-age=60'))


def test_authorization_needs_explicit_permission() -> None:
    request = req(("Authorization", "Basic eDp5"))
    assert not can_store(("Cache-Control", "max-age=60"), request=request)
    assert not can_store(request=request)
    assert can_store(("Cache-Control", "public"), request=request)
    assert can_store(("Cache-Control", "s-maxage=60"), request=request)
    assert can_store(("Cache-Control", "must-revalidate, max-age=60"), request=request)


def test_vary_star_is_never_stored() -> None:
    assert not can_store(("Cache-Control", "max-age=60"), ("Vary", "*"))
    assert can_store(("Cache-Control", "max-age=60"), ("Vary", "Accept-Encoding"))


def test_only_the_chunked_transfer_coding_is_stored() -> None:
    fresh = ("Cache-Control", "max-age=60")
    assert can_store(fresh, ("Transfer-Encoding", "chunked"))
    assert can_store(fresh, ("Transfer-Encoding", "Chunked"))
    assert not can_store(fresh, ("Transfer-Encoding", "gzip, chunked"))
    assert not can_store(fresh, ("Transfer-Encoding", "gzip"))


def test_set_cookie_does_not_prevent_storing() -> None:
    cookie = ("Set-Cookie", "id=1")
    assert can_store(cookie, ("Cache-Control", "max-age=60"))
    assert can_store(cookie, ("Cache-Control", "public, max-age=60"))
    assert not can_store(cookie, ("Cache-Control", "max-age=60, private"))
    assert not can_store(cookie, ("Cache-Control", "public, no-store"))


# -- freshness lifetime -------------------------------------------------------------------
def lifetime(*fields: tuple[str, str], status: int = 200, date: float | None = T0) -> float:
    stored = response(*fields, status=status, date=date)
    return freshness_lifetime(stored.status, stored.headers, stored.response_time)


def test_s_maxage_first_then_max_age_then_expires() -> None:
    expires = ("Expires", http_date(T0 + 300))
    assert lifetime(("Cache-Control", "max-age=60, s-maxage=30"), expires) == 30
    assert lifetime(("Cache-Control", "max-age=60"), expires) == 60
    assert lifetime(expires) == 300


def test_expires_minus_date_uses_receipt_time_without_date() -> None:
    assert lifetime(("Expires", http_date(T0 + 90)), date=None) == 90
    assert lifetime(("Expires", http_date(T0 - 90))) == 0
    assert lifetime(("Expires", "0")) == 0


def test_invalid_max_age_means_stale() -> None:
    assert lifetime(("Cache-Control", "max-age=soon"), ("Expires", http_date(T0 + 300))) == 0


def test_heuristic_is_ten_percent_of_the_last_modified_age() -> None:
    assert lifetime(("Last-Modified", http_date(T0 - 1000))) == pytest.approx(100)


def test_heuristic_is_capped_at_a_day() -> None:
    assert lifetime(("Last-Modified", http_date(T0 - 100 * 86400))) == HEURISTIC_CAP


def test_heuristic_only_without_explicit_expiration() -> None:
    modified = ("Last-Modified", http_date(T0 - 1000))
    assert lifetime(modified, ("Cache-Control", "max-age=5")) == 5
    assert lifetime(modified, ("Expires", "0")) == 0


def test_heuristic_only_for_heuristically_cacheable_or_public() -> None:
    modified = ("Last-Modified", http_date(T0 - 1000))
    assert lifetime(modified, status=302) == 0
    assert lifetime(modified, ("Cache-Control", "public"), status=302) == pytest.approx(100)
    assert lifetime(modified, status=404) == pytest.approx(100)


def test_no_heuristic_without_last_modified_or_from_the_future() -> None:
    assert lifetime() == 0
    assert lifetime(("Last-Modified", http_date(T0 + 10))) == 0


# -- age ------------------------------------------------------------------------------------
def test_age_is_resident_time_when_clocks_agree() -> None:
    assert current_age(response(), T0 + 42) == 42


def test_age_adds_the_age_header_and_the_response_delay() -> None:
    stored = response(("Age", "30"), request_time=T0 - 2, response_time=T0)
    assert current_age(stored, T0 + 10) == 30 + 2 + 10


def test_apparent_age_from_an_old_date() -> None:
    stored = response(date=T0 - 100)
    assert current_age(stored, T0 + 5) == 105


def test_corrected_age_wins_over_a_smaller_apparent_age() -> None:
    stored = response(("Age", "500"), date=T0 - 100)
    assert current_age(stored, T0) == 500


def test_date_in_the_future_does_not_make_age_negative() -> None:
    assert current_age(response(date=T0 + 1000), T0) == 0


# -- decide: basic outcomes ---------------------------------------------------------------
FRESH_60 = ("Cache-Control", "max-age=60")


def test_only_get_and_head_are_served() -> None:
    stored = response(FRESH_60)
    assert decide("GET", [], stored, T0 + 1).action is Action.FRESH
    assert decide("HEAD", [], stored, T0 + 1).action is Action.FRESH
    decision = decide("POST", [], stored, T0 + 1)
    assert decision.action is Action.MISS and decision.fwd == "method"


def test_nothing_stored_is_a_miss() -> None:
    decision = decide("GET", [], None, T0)
    assert decision.action is Action.MISS and decision.fwd == "miss"


def test_fresh_and_ttl() -> None:
    decision = decide("GET", [], response(FRESH_60), T0 + 10)
    assert decision.action is Action.FRESH
    assert decision.age == 10 and decision.lifetime == 60 and decision.ttl == 50


def test_stale_needs_revalidation() -> None:
    decision = decide("GET", [], response(FRESH_60), T0 + 61)
    assert decision.action is Action.REVALIDATE and decision.fwd == "stale"
    assert decision.ttl == -1


# -- decide: request directives ------------------------------------------------------------
def test_only_if_cached_without_a_stored_response_is_504() -> None:
    decision = decide("GET", req(("Cache-Control", "only-if-cached")), None, T0)
    assert decision.action is Action.GATEWAY_TIMEOUT


def test_only_if_cached_is_served_when_fresh() -> None:
    request = req(("Cache-Control", "only-if-cached"))
    assert decide("GET", request, response(FRESH_60), T0 + 1).action is Action.FRESH


def test_only_if_cached_replaces_any_trip_upstream_with_504() -> None:
    request = req(("Cache-Control", "only-if-cached"))
    assert decide("GET", request, response(FRESH_60), T0 + 61).action is (
        Action.GATEWAY_TIMEOUT)
    request = req(("Cache-Control", "only-if-cached, no-cache"))
    assert decide("GET", request, response(FRESH_60), T0 + 1).action is (
        Action.GATEWAY_TIMEOUT)


def test_request_no_cache_revalidates_a_fresh_response() -> None:
    decision = decide("GET", req(("Cache-Control", "no-cache")), response(FRESH_60), T0 + 1)
    assert decision.action is Action.REVALIDATE and decision.fwd == "request"


def test_request_pragma_no_cache_revalidates_only_without_cache_control() -> None:
    stored = response(FRESH_60)
    assert decide("GET", req(("Pragma", "no-cache")), stored, T0 + 1).action is (
        Action.REVALIDATE)
    request = req(("Pragma", "no-cache"), ("Cache-Control", "max-stale"))
    assert decide("GET", request, stored, T0 + 1).action is Action.FRESH


def test_request_max_age() -> None:
    stored = response(FRESH_60)
    assert decide("GET", req(("Cache-Control", "max-age=10")), stored, T0 + 10).action is (
        Action.FRESH)
    decision = decide("GET", req(("Cache-Control", "max-age=10")), stored, T0 + 11)
    assert decision.action is Action.REVALIDATE and decision.reason == "request-max-age"
    assert decide("GET", req(("Cache-Control", "max-age=0")), stored, T0 + 1).action is (
        Action.REVALIDATE)


def test_request_min_fresh() -> None:
    stored = response(FRESH_60)
    request = req(("Cache-Control", "min-fresh=20"))
    assert decide("GET", request, stored, T0 + 40).action is Action.FRESH
    decision = decide("GET", request, stored, T0 + 41)
    assert decision.action is Action.REVALIDATE and decision.reason == "min-fresh"


def test_request_max_stale_with_and_without_a_value() -> None:
    stored = response(FRESH_60)
    bounded = req(("Cache-Control", "max-stale=30"))
    decision = decide("GET", bounded, stored, T0 + 90)
    assert decision.action is Action.STALE_OK and not decision.background
    assert decide("GET", bounded, stored, T0 + 91).action is Action.REVALIDATE
    unbounded = req(("Cache-Control", "max-stale"))
    assert decide("GET", unbounded, stored, T0 + 10**6).action is Action.STALE_OK
    invalid = req(("Cache-Control", "max-stale=lots"))
    assert decide("GET", invalid, stored, T0 + 61).action is Action.REVALIDATE


def test_request_max_age_still_limits_max_stale() -> None:
    request = req(("Cache-Control", "max-age=70, max-stale"))
    stored = response(FRESH_60)
    assert decide("GET", request, stored, T0 + 65).action is Action.STALE_OK
    assert decide("GET", request, stored, T0 + 71).action is Action.REVALIDATE


# -- decide: response directives -----------------------------------------------------------
def test_response_no_cache_always_revalidates() -> None:
    stored = response(("Cache-Control", "no-cache, max-age=60"))
    decision = decide("GET", [], stored, T0 + 1)
    assert decision.action is Action.REVALIDATE and decision.reason == "no-cache"
    stored = response(("Cache-Control", 'no-cache="Set-Cookie", max-age=60'))
    assert decide("GET", [], stored, T0 + 1).action is Action.REVALIDATE
    request = req(("Cache-Control", "max-stale"))
    assert decide("GET", request, stored, T0 + 1).action is Action.REVALIDATE


@pytest.mark.parametrize("directive", [
    "must-revalidate, max-age=60", "proxy-revalidate, max-age=60", "s-maxage=60",
])
def test_directives_that_forbid_serving_stale(directive) -> None:
    stored = response(("Cache-Control", f"{directive}, stale-while-revalidate=600"))
    assert decide("GET", [], stored, T0 + 59).action is Action.FRESH
    for request in ([], req(("Cache-Control", "max-stale"))):
        decision = decide("GET", request, stored, T0 + 61)
        assert decision.action is Action.REVALIDATE
        assert decision.reason == "must-revalidate"


def test_stale_while_revalidate_window() -> None:
    stored = response(("Cache-Control", "max-age=60, stale-while-revalidate=30"))
    decision = decide("GET", [], stored, T0 + 90)
    assert decision.action is Action.STALE_OK and decision.background
    assert decision.reason == "stale-while-revalidate"
    assert decide("GET", [], stored, T0 + 91).action is Action.REVALIDATE


def test_stale_while_revalidate_does_not_override_request_no_cache() -> None:
    stored = response(("Cache-Control", "max-age=60, stale-while-revalidate=30"))
    request = req(("Cache-Control", "no-cache"))
    assert decide("GET", request, stored, T0 + 70).action is Action.REVALIDATE


def test_authorization_requires_a_sharing_directive_to_reuse() -> None:
    request = req(("Authorization", "Bearer x"))
    decision = decide("GET", request, response(FRESH_60), T0 + 1)
    assert decision.action is Action.MISS and decision.reason == "authorization"
    for directive in ("public, max-age=60", "s-maxage=60", "must-revalidate, max-age=60"):
        stored = response(("Cache-Control", directive))
        assert decide("GET", request, stored, T0 + 1).action is Action.FRESH


def test_heuristic_freshness_is_used_by_decide() -> None:
    stored = response(("Last-Modified", http_date(T0 - 1000)))
    assert decide("GET", [], stored, T0 + 99).action is Action.FRESH
    assert decide("GET", [], stored, T0 + 101).action is Action.REVALIDATE


# -- stale-if-error ------------------------------------------------------------------------
def test_stale_if_error_window_from_the_response() -> None:
    stored = response(("Cache-Control", "max-age=600, stale-if-error=1200"))
    assert stale_if_error_allows(stored, T0 + 900, [])
    assert stale_if_error_allows(stored, T0 + 1800, [])
    assert not stale_if_error_allows(stored, T0 + 1801, [])


def test_stale_if_error_window_from_the_request() -> None:
    stored = response(FRESH_60)
    assert not stale_if_error_allows(stored, T0 + 100, [])
    request = req(("Cache-Control", "stale-if-error=50"))
    assert stale_if_error_allows(stored, T0 + 110, request)
    assert not stale_if_error_allows(stored, T0 + 111, request)


@pytest.mark.parametrize("directive", ["must-revalidate", "proxy-revalidate", "no-cache"])
def test_stale_if_error_forbidden(directive) -> None:
    stored = response(("Cache-Control", f"max-age=60, {directive}, stale-if-error=600"))
    assert not stale_if_error_allows(stored, T0 + 100, req(("Cache-Control",
                                                           "stale-if-error=600")))
    stored = response(("Cache-Control", "s-maxage=60, stale-if-error=600"))
    assert not stale_if_error_allows(stored, T0 + 100, [])


# -- invalidation ----------------------------------------------------------------------------
KEY = b"http://example.com/items/1"
KEYS = [KEY, b"https://example.com/items/1"]  # the target, in both schemes


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "PURGE-UNKNOWN"])
def test_unsafe_methods_invalidate_the_target(method) -> None:
    assert invalidation_targets(method, 204, KEY, []) == KEYS


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "TRACE"])
def test_safe_methods_invalidate_nothing(method) -> None:
    assert invalidation_targets(method, 200, KEY, []) == []


@pytest.mark.parametrize("status", [100, 400, 404, 500, 503])
def test_errors_invalidate_nothing(status) -> None:
    assert invalidation_targets("POST", status, KEY, []) == []


def test_location_and_content_location_on_the_same_origin() -> None:
    headers = [(b"Location", b"/items/2"), (b"Content-Location", b"http://EXAMPLE.com:80/c")]
    assert invalidation_targets("POST", 201, KEY, headers) == [
        *KEYS, b"http://example.com/items/2", b"https://example.com/items/2",
        b"http://example.com/c", b"https://example.com/c"]


def test_a_request_made_over_https_invalidates_the_http_keys_too() -> None:
    assert invalidation_targets("PUT", 204, KEYS[1], [(b"Location", b"/items/2")]) == [
        KEYS[1], KEY, b"https://example.com/items/2", b"http://example.com/items/2"]


def test_location_on_another_origin_is_not_invalidated() -> None:
    for other in (b"http://evil.example/items/1", b"https://example.com/items/2",
                  b"http://example.com:8080/x"):
        assert invalidation_targets("PUT", 303, KEY, [(b"Location", other)]) == KEYS


def test_location_equal_to_the_target_is_listed_once() -> None:
    assert invalidation_targets("DELETE", 200, KEY, [(b"Location", b"1")]) == KEYS
