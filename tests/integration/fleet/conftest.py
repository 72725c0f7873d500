"""Fixtures of the fleet tests: real redis-servers, and links to them on a real loop.

Links use short timeouts and waits (``FAST``) so that outages play out in a fraction of
a second.
"""

from __future__ import annotations

import pytest

from monkey_py.config import Location
from monkey_py_plugins.proxy_reverse.fleet.address import parse_redis_url
from monkey_py_plugins.proxy_reverse.fleet.client import RedisClient
from monkey_py_plugins.proxy_reverse.fleet.link import RedisParameters
from redis_support import RedisServer, run_until

FAST = RedisParameters(timeout=0.2, connect_timeout=0.5, retry_min=0.02, retry_max=0.2)


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    """A redis-server the module's tests share (they use keys of their own)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server for one test, which may kill, restart or pause it."""
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def connect(loop):
    """``connect(url, kind=RedisClient, params=FAST, wait=True)``: a started link (up,
    unless ``wait`` is False), closed at the end of the test."""
    links = []

    def make(url: str, kind=RedisClient, params=FAST, wait: bool = True):
        link = kind(loop, parse_redis_url(url, Location("test.conf", 1)), params)
        links.append(link)
        link.start()
        if wait:
            run_until(loop, lambda: link.up)
        return link

    yield make
    for link in links:
        link.close()
