"""The fleet's fill locks on a real Redis: one holder at a time, released only by its
holder, waiters woken by the release's message (even one that arrives before they
wait), never later than their deadline."""

from __future__ import annotations

import time

from monkey_py_plugins.proxy_reverse.cache.fleet_locks import HELD, UNLOCKED, FleetLocks
from monkey_py_plugins.proxy_reverse.cache.stores.redis_format import lock_key
from monkey_py_plugins.proxy_reverse.fleet.pubsub import RedisSubscriber
from redis_support import run_for, run_until

PRIMARY = b"http://localhost/locked"


def locks(loop, connect, redis) -> FleetLocks:
    """One instance's locks (its own links), subscribed before it returns."""
    client = connect(redis.url())
    subscriber = connect(redis.url(), kind=RedisSubscriber)
    made = FleetLocks(loop, client, subscriber)
    run_until(loop, lambda: redis.call("PUBSUB", "NUMSUB", made.channel)[1] >= 1)
    return made


def take(loop, fleet: FleetLocks, timeout: float = 2.0):
    got = []
    fleet.take(PRIMARY, timeout, got.append)
    run_until(loop, lambda: got)
    return got[0]


def test_one_holder_at_a_time_and_only_it_releases(loop, connect, redis):
    redis.call("DEL", lock_key(PRIMARY))
    a, b = locks(loop, connect, redis), locks(loop, connect, redis)
    release = take(loop, a)
    assert callable(release)
    held = take(loop, b)
    assert held[0] == HELD
    assert 1000 < redis.call("PTTL", lock_key(PRIMARY)) <= 2000
    # A lock that expired and was taken by another is not the first holder's to delete.
    redis.call("SET", lock_key(PRIMARY), "someone-else")
    release()
    run_for(loop, 0.1)
    assert redis.call("GET", lock_key(PRIMARY)) == b"someone-else"
    redis.call("DEL", lock_key(PRIMARY))
    release = take(loop, b)
    release()
    run_until(loop, lambda: redis.call("EXISTS", lock_key(PRIMARY)) == 0)


def test_a_release_wakes_the_waiters_of_another_instance(loop, connect, redis):
    redis.call("DEL", lock_key(PRIMARY))
    a, b = locks(loop, connect, redis), locks(loop, connect, redis)
    release = take(loop, a)
    _, asked = take(loop, b)
    woken = []
    b.wait(PRIMARY, asked, loop.time() + 10, lambda: woken.append(loop.time()))
    run_for(loop, 0.1)
    assert woken == []
    released = loop.time()
    release()
    run_until(loop, lambda: woken)
    assert woken[0] - released < 0.5


def test_a_release_seen_before_the_wait_still_wakes_it(loop, connect, redis):
    redis.call("DEL", lock_key(PRIMARY))
    a, b = locks(loop, connect, redis), locks(loop, connect, redis)
    release = take(loop, a)
    _, asked = take(loop, b)
    release()
    run_for(loop, 0.2)  # the release's message has come, before b waits
    woken = []
    b.wait(PRIMARY, asked, loop.time() + 10, lambda: woken.append(True))
    run_until(loop, lambda: woken, timeout=0.5)


def test_a_lost_holder_keeps_no_waiter_past_its_deadline(loop, connect, redis):
    redis.call("DEL", lock_key(PRIMARY))
    a, b = locks(loop, connect, redis), locks(loop, connect, redis)
    take(loop, a, timeout=0.3)  # never released: its holder is "lost"
    _, asked = take(loop, b)
    woken = []
    started = time.monotonic()
    b.wait(PRIMARY, asked, loop.time() + 0.3, lambda: woken.append(time.monotonic()))
    run_until(loop, lambda: woken)
    assert 0.25 < woken[0] - started < 0.6
    run_until(loop, lambda: redis.call("EXISTS", lock_key(PRIMARY)) == 0)  # PX expired
    assert b._waiting == {}


def test_without_redis_a_fill_goes_ahead_unlocked(loop, connect, own_redis):
    a = locks(loop, connect, own_redis)
    own_redis.kill()
    run_until(loop, lambda: not a.client.up)
    assert take(loop, a) == UNLOCKED
