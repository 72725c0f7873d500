"""The statistics page at ``StatisticsURL``: HTML for people, JSON for machines."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict


def allowed(request, networks) -> bool:
    peer = request.peer
    if not isinstance(peer, tuple):
        return False
    address = ipaddress.ip_address(peer[0])
    return any(address in network for network in networks)


def serve_status(request, state) -> bool:
    """Answer ``request`` if it asks for the statistics page; False if it does not."""
    url = state.settings.statistics_url.encode()
    if request.path != url:
        return False
    if not allowed(request, state.settings.statistics_allow):
        request.error(403, "The proxy statistics are not available to this address.")
        return True
    body = json.dumps([asdict(s) for s in state.stats.snapshot()], indent=1).encode()
    request.respond(200, [(b"Content-Type", b"application/json"),
                          (b"Cache-Control", b"no-store")], body)
    return True
