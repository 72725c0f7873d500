"""Collapsing across the instances of a fleet: a fill holds a lock in Redis, and the
requests of other instances wait until it is released (docs/fleet.md, "Collapsing
across instances").

A fill takes ``SET monkey:cache-lock:<hash> <token> NX PX <lock timeout>``. Whoever
finds the lock held waits, on its loop, for the message the holder publishes on
``monkey:cache-filled:<db>`` when its fill ends (``RELEASE``: delete the lock if it is still ours, then publish), never
longer than the lock timeout, after which the lock has expired and it fetches itself.
Every worker subscribes to the channel when it starts, before it ever checks a lock,
so no release can pass unseen between the check and the wait; a release whose message
arrives before the reply that says the lock is held is remembered for a moment
(``RECENT_SECONDS``) for the same reason. Without Redis (down, slow, full) a fill goes
ahead without a lock: requests then collapse within each worker only.
"""

from __future__ import annotations

import os
from itertools import count

from ..fleet.script import RedisScript, preload
from .stores.redis_format import filled_channel, lock_key

# Delete the lock if it is still the caller's, and wake whoever waits for it.
RELEASE = RedisScript("""
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('PUBLISH', ARGV[2], KEYS[1])
return 1
""")
RECENT_SECONDS = 1.0
RECENT_SIZE = 1024
# What ``take`` calls back with when another instance holds the lock, or when there is
# no lock to be had (Redis down or failing: the fill goes ahead alone).
HELD, UNLOCKED = "held", "unlocked"


class FleetLocks:
    """This worker's side of the fleet's fill locks in one Redis."""

    def __init__(self, loop, client, subscriber) -> None:
        self.loop = loop
        self.client = client
        self.subscriber = subscriber
        self._tokens = count()
        self._prefix = os.urandom(8).hex().encode()
        self._waiting: dict[bytes, list] = {}
        self._recent: dict[bytes, float] = {}
        preload(client, (RELEASE,))
        self.channel = filled_channel(client.address.db)
        subscriber.subscribe(self.channel, self._released)

    def take(self, primary: bytes, timeout: float, callback) -> None:
        """Try the lock of ``primary`` for ``timeout`` seconds; ``callback(outcome)``
        with a release function (the lock is ours: call it when the fill ends),
        ``HELD`` with the loop time of the attempt, or ``UNLOCKED``."""
        if not (self.client.up and self.subscriber.up):
            self.loop.call_soon(lambda: callback(UNLOCKED))
            return
        key = lock_key(primary)
        token = b"%s-%d" % (self._prefix, next(self._tokens))
        asked = self.loop.time()

        def answered(reply, error) -> None:
            if error is not None:
                callback(UNLOCKED)
            elif reply is None:
                callback((HELD, asked))
            else:
                callback(lambda: RELEASE.run(self.client, [key], [token, self.channel]))

        self.client.command("SET", key, token, "NX", "PX", max(1, int(timeout * 1000)),
                            callback=answered)

    def wait(self, primary: bytes, asked: float, deadline: float, callback) -> None:
        """Call ``callback()`` once the lock of ``primary`` (found held at loop time
        ``asked``) is released, or at ``deadline`` (it has expired by then)."""
        key = lock_key(primary)
        released = self._recent.get(key)
        if released is not None and released >= asked:
            self.loop.call_soon(callback)
            return
        waiters = self._waiting.setdefault(key, [])
        entry = [callback, None]
        waiters.append(entry)

        def expire() -> None:
            entry[1] = None
            if entry in waiters:
                waiters.remove(entry)
                if not waiters and self._waiting.get(key) is waiters:
                    del self._waiting[key]
            callback()

        entry[1] = self.loop.call_at(deadline, expire)

    def _released(self, channel: bytes, key: bytes) -> None:
        """A fill somewhere in the fleet ended: wake whoever waits for it here."""
        now = self.loop.time()
        if len(self._recent) >= RECENT_SIZE:
            self._recent = {k: t for k, t in self._recent.items()
                            if now - t < RECENT_SECONDS}
        self._recent[key] = now
        for callback, timer in self._waiting.pop(key, ()):
            if timer is not None:
                self.loop.cancel(timer)
            callback()
