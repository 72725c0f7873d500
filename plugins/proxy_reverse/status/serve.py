"""The statistics at ``StatisticsURL``: HTML for people, JSON and Prometheus for machines.

The URLs, for ``StatisticsURL /proxy-status``::

    /proxy-status                     HTML (also ?format=html)
    /proxy-status.json                JSON (also /proxy-status?format=json)
    /proxy-status/metrics             Prometheus text (also /proxy-status?format=prometheus)

Only clients whose address is in ``StatisticsAllow`` (loopback by default) get them.
In a fleet, the page waits for the fleet's figures from Redis (at most Redis's command
timeout) and shows them after the local ones.
"""

from __future__ import annotations

import ipaddress
import logging
from urllib.parse import parse_qs

from .html import render_html
from .json import render_json
from .prometheus import PROMETHEUS_CONTENT_TYPE, render_prometheus
from .report import build_report

FORMATS = ("html", "json", "prometheus")
CONTENT_TYPES = {
    "html": b"text/html; charset=utf-8",
    "json": b"application/json",
    "prometheus": PROMETHEUS_CONTENT_TYPE,
}
RENDERERS = {"html": render_html, "json": render_json, "prometheus": render_prometheus}
log = logging.getLogger("monkey_py.proxy_reverse")


def allowed(request, networks) -> bool:
    """Whether the client's address is in one of ``networks``."""
    peer = request.peer
    if not isinstance(peer, tuple):
        return False
    address = ipaddress.ip_address(peer[0].partition("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def implied_format(path: bytes, url: bytes) -> str | None:
    """The format a status URL stands for ("" for ``url`` itself); None for other paths."""
    if path == url:
        return ""
    if path == url + b".json":
        return "json"
    if path == url.rstrip(b"/") + b"/metrics":
        return "prometheus"
    return None


def chosen_format(query: bytes | None, implied: str, url: bytes) -> str:
    """The format named by ``?format=``, else the URL's own; ValueError if unknown."""
    asked = parse_qs((query or b"").decode("latin-1")).get("format")
    if not asked:
        return implied or "html"
    chosen = asked[-1].lower()
    if chosen not in FORMATS or (implied and chosen != implied):
        raise ValueError(f"format={asked[-1]} is not available here; use "
                         f"{url.decode('latin-1')}?format=html, json or prometheus")
    return chosen


def serve_status(request, state, fleet=None) -> bool:
    """Answer ``request`` if it asks for the statistics; False if it does not.

    ``fleet``: the worker's FleetFigures in a fleet, else None.
    """
    url = state.settings.statistics_url.encode()
    implied = implied_format(request.path, url)
    if implied is None:
        return False
    if not allowed(request, state.settings.statistics_allow):
        request.error(403, "The proxy statistics are not available to this address.")
        return True
    if request.method not in ("GET", "HEAD"):
        request.error(405, "The proxy statistics are read with GET or HEAD.",
                      [(b"Allow", b"GET, HEAD")])
        return True
    try:
        chosen = chosen_format(request.query, implied, url)
    except ValueError as exc:
        request.error(400, str(exc))
        return True
    # This worker's own counts are published first: the page is current for them.
    state.stats.publish()
    if fleet is None:
        _answer(request, chosen, build_report(state))
    else:
        fleet.read(lambda view: _answer_later(request, chosen, build_report(state, view)))
    return True


def _answer(request, chosen: str, report) -> None:
    body = RENDERERS[chosen](report)
    request.respond(200, [(b"Content-Type", CONTENT_TYPES[chosen]),
                          (b"Cache-Control", b"no-store")], body)


def _answer_later(request, chosen: str, report) -> None:
    """Answer once the fleet's figures are read, unless the client has gone."""
    if request.finished:
        return
    try:
        _answer(request, chosen, report)
    except Exception:
        log.exception("the statistics page failed")
        if not request.response_started:
            request.error(500, "The statistics page failed; see the error log.")
