"""Fixtures the reverse proxy's test modules share.

A module defines ``setup`` (module-scoped) returning ``(proxy, upstreams by name)`` (or a
single upstream);
``proxy`` and ``ups`` give each test those, with the upstreams' records reset before and
every upstream connection count settled back to zero after.
"""

from __future__ import annotations

import pytest

from proxy_support import assert_settled
from redis_support import RedisServer
from cache_support import Routes
from upstreams import Upstreams


@pytest.fixture(scope="session")
def cache_redis(tmp_path_factory):
    """A redis-server for the cache tests run over the Redis store (``store_keys``)."""
    server = RedisServer(tmp_path_factory.mktemp("cache-redis"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def module_upstreams():
    """Start test upstreams for a module: ``module_upstreams(name, behaviour)``."""
    with Upstreams() as start:
        yield start


@pytest.fixture
def proxy(setup):
    upstreams = setup[1]
    for upstream in upstreams.values() if isinstance(upstreams, dict) else [upstreams]:
        upstream.reset()
    yield setup[0]
    assert_settled(setup[0].port)


@pytest.fixture
def ups(setup):
    return setup[1]


@pytest.fixture(scope="module")
def upstream():
    """The module's origin: an upstream whose answer each test sets per target through
    ``routes`` (the cache tests' usual origin; a module may define its own)."""
    with Upstreams() as start:
        yield start("origin", Routes())


@pytest.fixture
def routes(upstream):
    """``upstream``'s Routes: ``routes.set(target, answer)``."""
    return upstream.behaviour
