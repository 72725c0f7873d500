"""Helpers for the fleet-mode tests: monkey_py instances sharing one redis-server, each
with a configuration directory and ports of its own, as separate machines would be."""

from __future__ import annotations

import json
from collections import Counter

from proxy_support import STATUS_URL, start_proxy
from rawhttp import Client

HEALTH_CHANNEL = "monkey:fleet:health"


def fleet_proxy(factory, redis_url: str, name: str, *entries: str, workers: int = 1,
                **defaults):
    """An instance named ``name`` in the fleet of ``redis_url``."""
    return start_proxy(factory, *entries, workers=workers, Fleet=redis_url, FleetName=name,
                       **defaults)


def listening_workers(redis) -> int:
    """How many workers of the fleet listen to its health events."""
    return redis.call("PUBSUB", "NUMSUB", HEALTH_CHANNEL)[1]


def answers(port: int, target: str, count: int) -> Counter:
    """The upstreams that answered ``count`` requests, each on a new connection (so that
    every worker of the instance takes some)."""
    found = Counter()
    for _ in range(count):
        with Client(port) as client:
            response = client.request("GET", target)
        assert response.status == 200, response
        found[response.header("X-Upstream")] += 1
    return found


def status(port: int) -> dict:
    """The statistics page's JSON document."""
    with Client(port) as client:
        response = client.request("GET", STATUS_URL + ".json")
    assert response.status == 200, response
    return json.loads(response.body)
