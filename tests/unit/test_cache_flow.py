"""The cache API used end to end as the proxy uses it, over both stores."""

from __future__ import annotations

import pytest

from monkey_py.static.conditional import http_date
from monkey_py_plugins.proxy_reverse.cache.rules.fields import (
    cache_status,
    storage_headers,
)
from monkey_py_plugins.proxy_reverse.cache.rules.key import primary_key
from monkey_py_plugins.proxy_reverse.cache.rules.policy import (
    Action,
    decide,
    invalidation_targets,
    stale_if_error_allows,
    storable,
)
from monkey_py_plugins.proxy_reverse.cache.rules.validation import (
    client_not_modified,
    conditional_headers,
    not_modified_matches,
    updated_headers,
)
from monkey_py_plugins.proxy_reverse.cache.stores.disk import DiskStore
from monkey_py_plugins.proxy_reverse.cache.stores.memory import MemoryStore
from monkey_py_plugins.proxy_reverse.cache.stores.store import Meta

T0 = 1_700_000_000.0


@pytest.fixture(params=["memory", "disk"])
def store(request, tmp_path):
    if request.param == "memory":
        return MemoryStore(1 << 20, 1 << 16)
    return DiskStore(str(tmp_path / "cache"), 1 << 20, 1 << 16)


def test_miss_store_hit_revalidate_invalidate(store) -> None:
    key = primary_key("http", b"Example.com", b"/page")
    request = [(b"host", b"Example.com"), (b"accept-encoding", b"gzip")]
    decision = decide("GET", request, store.lookup(key, request), T0)
    assert decision.action is Action.MISS

    upstream = [
        (b"Date", http_date(T0).encode()), (b"Cache-Control", b"max-age=60, stale-if-error=600"),
        (b"ETag", b'"v1"'), (b"Vary", b"Accept-Encoding"), (b"Content-Length", b"5"),
        (b"Connection", b"keep-alive"), (b"Keep-Alive", b"timeout=5"),
    ]
    assert storable("GET", 200, request, upstream)
    writer = store.begin(key, request, Meta(200, storage_headers(upstream), T0, T0))
    assert writer.write(b"hel") and writer.write(b"lo")
    assert writer.commit()
    assert store.lookup(key, [(b"accept-encoding", b"br")]) is None

    stored = store.lookup(key, request)
    decision = decide("HEAD", request, stored, T0 + 10)
    assert decision.action is Action.FRESH
    assert (decision.age, decision.ttl, stored.body_length) == (10, 50, 5)
    assert cache_status(hit=True, ttl=decision.ttl) == b"monkey_py; hit; ttl=50"
    assert not any(name in (b"Connection", b"Keep-Alive") for name, _ in stored.headers)
    assert client_not_modified([(b"if-none-match", b'"v1"')], stored)

    decision = decide("GET", request, stored, T0 + 61)
    assert decision.action is Action.REVALIDATE and decision.fwd == "stale"
    assert conditional_headers(stored.headers) == [(b"if-none-match", b'"v1"')]
    assert stale_if_error_allows(stored, T0 + 61, request)
    answer = [(b"Date", http_date(T0 + 61).encode()), (b"Cache-Control", b"max-age=120"),
              (b"ETag", b'"v1"')]
    assert not_modified_matches(stored.headers, answer)
    assert store.update_headers(stored, updated_headers(stored.headers, answer),
                                T0 + 61, T0 + 61)
    stored.close()

    again = store.lookup(key, request)
    decision = decide("GET", request, again, T0 + 100)
    assert decision.action is Action.FRESH and decision.ttl == 81
    assert again.read(0, 100) == b"hello"
    again.close()

    for target in invalidation_targets("POST", 201, key, [(b"Location", b"/page")]):
        store.invalidate(target)
    assert store.lookup(key, request) is None
