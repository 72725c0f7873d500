"""The shared cache of a fleet: instances of monkey_py on loopback, each with its own
configuration directory and port as separate machines would have, one real
redis-server, and one real upstream that counts its requests (docs/fleet.md, "The
shared cache")."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest

from monkey_py_plugins.proxy_reverse.cache.stores.redis_format import resource_key
from cache_support import Answer, Raw, await_redis_links, concurrently, fetches
from proxy_support import entry, start_proxy
from rawhttp import Client, ServerClosed
from redis_support import RedisServer
from upstreams import Exchange

MAX_AGE = [("Cache-Control", "max-age=600")]
BODY = b"shared across the fleet"


@pytest.fixture
def path(request):
    return "/f/" + re.sub(r"\W", "_", request.node.name)


def instance(factory, redis: RedisServer, upstream, db: int = 0, **keys):
    """One instance of the fleet, with the Redis store and its links up."""
    proxy = start_proxy(factory, entry("^/", upstream, Cache="On"),
                        CacheStore=redis.url(db), **keys)
    return proxy


def fleet(factory, redis: RedisServer, upstream, count: int, db: int = 0, **keys):
    proxies = [instance(factory, redis, upstream, db, **keys) for _ in range(count)]
    await_redis_links(redis, db, workers=count)
    return proxies


@pytest.fixture(scope="module")
def three(module_monkey, redis, upstream):
    """Three instances without a memory tier (CacheLockTimeout 2)."""
    redis.call("FLUSHDB", db=2)
    return fleet(module_monkey, redis, upstream, 3, db=2, CacheLockTimeout="2")


@pytest.fixture(scope="module")
def tiered(module_monkey, redis, upstream):
    """Two instances with a memory tier each."""
    redis.call("FLUSHDB", db=3)
    return fleet(module_monkey, redis, upstream, 2, db=3, CacheMemoryTier="8")


def get(proxy, target: str, method: str = "GET", headers=()):
    with Client(proxy.port, timeout=20) as client:
        return client.request(method, target, headers=list(headers))


def status(response) -> str:
    return response.header("Cache-Status") or ""


def is_hit(response) -> bool:
    return "; hit" in status(response) and "fwd=" not in status(response)


def cache_keys(redis: RedisServer, db: int) -> list[bytes]:
    return sorted(redis.call("KEYS", "monkey:cache:*", db=db))


def await_stored(redis: RedisServer, db: int, target: str, unlike=None) -> None:
    """Wait until the response for ``target`` is in Redis (it leaves for Redis just
    after its last byte leaves for the client), and differs from ``unlike`` (what
    HGETALL gave before)."""
    key = resource_key(b"http://localhost" + target.encode())
    deadline = time.monotonic() + 5
    while redis.call("HGETALL", key, db=db) in ([], unlike):
        assert time.monotonic() < deadline, f"{target} did not reach Redis"
        time.sleep(0.01)


def stored_in_redis(redis: RedisServer, db: int, count: int) -> list[bytes]:
    """The cache's keys in Redis once there are ``count`` (a response reaches Redis just
    after its last byte reaches the client)."""
    deadline = time.monotonic() + 5
    while len(keys := cache_keys(redis, db)) != count:
        assert time.monotonic() < deadline, f"{len(keys)} cache keys in Redis, not {count}"
        time.sleep(0.01)
    return keys


# -- sharing -----------------------------------------------------------------------------
def test_a_miss_on_one_instance_is_a_hit_on_another(three, upstream, routes, path, redis):
    a, b, c = three
    routes.set(path, Answer(body=BODY, headers=MAX_AGE))
    first = get(a, path)
    assert first.body == BODY and status(first) == "monkey_py; fwd=miss; fwd-status=200; stored"
    await_stored(redis, 2, path)
    for other in (b, c):
        answer = get(other, path)
        assert answer.status == 200 and answer.body == BODY and is_hit(answer)
    assert fetches(upstream, path) == 1


def test_vary_and_validation_are_shared(three, upstream, routes, path, redis):
    a, b, _ = three
    routes.set(path, Answer(body=b"en", headers=[
        ("Cache-Control", "max-age=0"), ("ETag", '"v1"'), ("Vary", "Accept-Language")]),
        Answer(304, headers=[("ETag", '"v1"'), ("Cache-Control", "max-age=600")]))
    assert get(a, path, headers=[("Accept-Language", "en")]).body == b"en"
    await_stored(redis, 2, path)
    before = redis.call("HGETALL", resource_key(b"http://localhost" + path.encode()), db=2)
    # Stale on B: revalidated with A's validator, and the 304's new head is shared.
    revalidated = get(b, path, headers=[("Accept-Language", "en")])
    assert revalidated.body == b"en" and "fwd=stale; fwd-status=304" in status(revalidated)
    assert received_validator(upstream, path) == '"v1"'
    await_stored(redis, 2, path, unlike=before)  # the new head, after the answer to B
    hit = get(a, path, headers=[("Accept-Language", "en")])
    assert hit.body == b"en" and is_hit(hit)
    other = get(b, path, headers=[("Accept-Language", "fr")])
    assert "fwd=miss" in status(other)


def received_validator(upstream, target: str) -> str | None:
    with upstream.cond:
        last = [r for r in upstream.received if r.target == target][-1]
    return last.header("If-None-Match")


def test_twenty_cold_requests_over_three_instances_make_one_fetch(three, upstream, routes,
                                                                   path):
    routes.set(path, Answer(body=BODY, headers=MAX_AGE, delay=0.5))
    answers = concurrently([(three[i % 3].port, path) for i in range(20)])
    assert [a.status for a in answers] == [200] * 20
    assert all(a.body == BODY for a in answers)
    assert fetches(upstream, path) == 1
    stored = [a for a in answers if "fwd=miss" in status(a)]
    assert len(stored) == 1 and "stored" in status(stored[0])
    assert all(is_hit(a) and status(a).endswith("collapsed") for a in answers
               if a is not stored[0])


def test_stale_while_revalidate_revalidates_once_in_the_fleet(three, upstream, routes,
                                                               path, redis):
    routes.set(path, Answer(body=BODY, headers=[
        ("Cache-Control", "max-age=1, stale-while-revalidate=60"), ("ETag", '"s"')]),
        Answer(304, headers=[("ETag", '"s"'), ("Cache-Control", "max-age=600")], delay=1.0))
    get(three[0], path)
    await_stored(redis, 2, path)
    time.sleep(2.1)  # stale now (Date has whole seconds)
    answers = concurrently([(proxy.port, path) for proxy in three])
    assert all(a.body == BODY and "detail=stale-while-revalidate" in status(a)
               for a in answers)
    assert upstream.wait_until(lambda up: fetches(up, path) == 2)
    time.sleep(1.5)  # the revalidation has answered; no other instance started one
    assert fetches(upstream, path) == 2
    assert all(is_hit(get(proxy, path)) for proxy in three)


def test_a_hanging_lock_holder_stalls_the_others_no_longer_than_the_lock_timeout(
        three, upstream, routes, path):
    a, b, c = three
    routes.set(path, Answer(body=b"late", headers=MAX_AGE, delay=4.0),
               Answer(body=BODY, headers=MAX_AGE))
    holder = threading.Thread(target=get, args=(a, path))
    holder.start()
    assert upstream.wait_until(lambda up: fetches(up, path) == 1)
    started = time.monotonic()
    answers = concurrently([(b.port, path), (c.port, path)])
    elapsed = time.monotonic() - started
    assert [x.body for x in answers] == [BODY, BODY]
    assert 1.5 <= elapsed < 2.0 + 1.0  # CacheLockTimeout 2, from when A took the lock
    holder.join(10)


def test_a_killed_lock_holder_stalls_the_others_no_longer_than_the_lock_timeout(
        start_monkey, redis, upstream, routes, path):
    redis.call("FLUSHDB", db=4)
    a, b = fleet(start_monkey, redis, upstream, 2, db=4, CacheLockTimeout="1")
    routes.set(path, Answer(body=b"never", headers=MAX_AGE, delay=30.0),
               Answer(body=BODY, headers=MAX_AGE))
    threading.Thread(target=lambda: _ignore_errors(get, a, path), daemon=True).start()
    assert upstream.wait_until(lambda up: fetches(up, path) == 1)
    assert redis.call("KEYS", "monkey:cache-lock:*", db=4)
    os.killpg(a.pid, signal.SIGKILL)
    started = time.monotonic()
    answer = get(b, path)
    assert answer.body == BODY and time.monotonic() - started < 1.0 + 0.5


def _ignore_errors(function, *args) -> None:
    try:
        function(*args)
    except (OSError, ServerClosed):
        pass


# -- invalidation ------------------------------------------------------------------------
def test_purge_on_one_instance_empties_the_memory_tier_of_another(tiered, upstream, routes,
                                                                   path, redis):
    a, b = tiered
    routes.set(path, Answer(body=BODY, headers=MAX_AGE))
    assert "stored" in status(get(a, path))
    # A serves from its memory tier: even with Redis's copy gone behind its back.
    for key in stored_in_redis(redis, 3, 1):
        redis.call("DEL", key, db=3)
    assert is_hit(get(a, path))
    assert "stored" in status(get(b, path))  # B fetches it anew, and stores it in Redis
    stored_in_redis(redis, 3, 1)
    purged = get(b, path, method="PURGE")
    assert purged.status == 200 and status(purged) == "monkey_py; detail=purged"
    assert cache_keys(redis, 3) == []
    assert eventually_a_miss(a, path) >= 1
    assert fetches(upstream, path) == 3


def test_an_unsafe_method_on_one_instance_invalidates_every_memory_tier(tiered, upstream,
                                                                        routes, path, redis):
    a, b = tiered
    routes.set(path, lambda exchange: Answer(
        201 if exchange.request.method == "POST" else 200, BODY, MAX_AGE))
    get(a, path)
    await_stored(redis, 3, path)
    assert is_hit(get(b, path)) and is_hit(get(a, path))
    assert get(b, path, method="POST", headers=[("Content-Length", "0")]).status == 201
    assert eventually_a_miss(a, path) >= 1


def eventually_a_miss(proxy, target: str) -> int:
    """GET ``target`` until it is a miss (the removal reaches the other instances
    through pub/sub, a moment after the answer to the request that made it); how many
    GETs it took."""
    deadline = time.monotonic() + 5
    for count in range(1, 1000):
        if "fwd=miss" in status(get(proxy, target)):
            return count
        assert time.monotonic() < deadline, "the removal never reached this instance"
    raise AssertionError("still a hit")


def test_purge_of_a_resource_nobody_holds_is_404(tiered, path):
    assert get(tiered[0], path, method="PURGE").status == 404


# -- the size limit ------------------------------------------------------------------------
def test_bodies_above_the_limit_never_reach_redis(start_monkey, redis, upstream, routes, path):
    redis.call("FLUSHDB", db=5)
    a, b = fleet(start_monkey, redis, upstream, 2, db=5, CacheRedisMaxObjectSize="1",
                 CacheMemoryTier="4")
    routes.set(path + "/small", Answer(body=b"s" * 1000, headers=MAX_AGE))
    routes.set(path + "/large", Answer(body=b"L" * 5000, headers=MAX_AGE))
    routes.set(path + "/chunked", Raw(chunked(b"C" * 5000)))
    for target in ("/small", "/large", "/chunked"):
        assert "stored" in status(get(a, path + target))
        assert is_hit(get(a, path + target))  # from A's memory tier
    (small,) = stored_in_redis(redis, 5, 1)
    assert small == resource_key(b"http://localhost" + (path + "/small").encode())
    assert "fwd=miss" in status(get(b, path + "/large"))
    assert "fwd=miss" in status(get(b, path + "/chunked"))
    # B's lookup goes to Redis after anything B sent before: a store would be there.
    assert is_hit(get(b, path + "/small"))
    assert cache_keys(redis, 5) == [small]  # the locks of the fills aside


def chunked(body: bytes):
    """An upstream answer whose length is only known as it streams (chunked)."""
    def behaviour(exchange: Exchange) -> bool:
        head = exchange.head(200, [*MAX_AGE, ("Transfer-Encoding", "chunked")], "OK")
        exchange.send(head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        return exchange.keep_alive
    return behaviour
