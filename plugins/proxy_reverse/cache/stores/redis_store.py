"""The cache's responses kept in Redis, shared by every instance of a fleet, with an
optional memory tier of this worker's own in front (docs/fleet.md, "The shared cache").

Redis answers later, so besides the store interface (whose ``lookup`` reads the memory
tier alone) this store has ``fetch``, which asks Redis and calls back. Writes leave
without waiting: a body is sent to Redis whole when it ends, with the TTL of
``redis_format.keep_seconds``, unless it is above ``redis_max_object`` (it then stays
in the memory tier, if any). Removals delete in Redis and are published, so that every
worker of every instance drops them from its memory tier. Nothing here fails a
request: a Redis that errs or is down makes a lookup a miss and a write a no-op.
"""

from __future__ import annotations

import logging

from ...fleet.errors import RedisReplyError
from ...fleet.script import RedisScript, preload
from ...forwarding.throttled_log import ThrottledLog
from ..rules.control import Headers
from ..rules.key import secondary_key
from ..rules.partial import partial_key
from .memory import MemoryStore
from .redis_format import (
    VARY_FIELD,
    decode_head,
    decode_vary,
    encode_head,
    encode_vary,
    invalidated_channel,
    keep_seconds,
    resource_key,
    variant_fields,
)
from .store import Meta, Stored, content_length, length_mismatch, names_to_store

log = logging.getLogger("monkey_py.proxy_reverse")

VARY_MEMO_SIZE = 4096

# A variant replaces the resource's other variants when its Vary names differ; the
# hash lives as long as its longest-lived variant.
STORE = RedisScript("""
local vary = redis.call('HGET', KEYS[1], 'vary')
if vary and vary ~= ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], 'vary', ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[6]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
end
return 1
""")
# A 304's new head replaces the head it revalidated, not one stored since.
UPDATE = RedisScript("""
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return 1
""")
# Remove resources, say so to every instance; the reply counts the variants removed.
DROP = RedisScript("""
local removed = 0
for _, key in ipairs(KEYS) do
  local fields = redis.call('HLEN', key)
  if fields > 0 then removed = removed + math.floor((fields - 1) / 2) end
end
redis.call('DEL', unpack(KEYS))
redis.call('PUBLISH', ARGV[1], ARGV[2])
return removed
""")


class RedisStore:
    """Responses in Redis (``client``), with a memory tier of ``tier_bytes`` (0: none).

    ``max_object`` bounds what the memory tier keeps and ``redis_max_object`` what is
    sent to Redis. ``subscriber`` brings the other instances' removals.
    """

    def __init__(self, loop, client, subscriber, *, tier_bytes: int, max_object: int,
                 redis_max_object: int, targets=()) -> None:
        self.loop = loop
        self.client = client
        self.tier = MemoryStore(tier_bytes, max_object) if tier_bytes > 0 else None
        self.redis_max_object = min(redis_max_object, max_object)
        self.max_object = max(self.redis_max_object, self.tier.max_object if self.tier else 0)
        self.targets = targets
        self._vary: dict[bytes, tuple[bytes, ...]] = {}
        self._errors = ThrottledLog(log)
        preload(client, (STORE, UPDATE, DROP))
        self.channel = invalidated_channel(client.address.db)
        subscriber.subscribe(self.channel, self._invalidated)
        subscriber.watch(self._subscription_changed)

    # -- reading -----------------------------------------------------------------------------
    def lookup(self, primary: bytes, request_headers: Headers) -> Stored | None:
        """The memory tier's response (``fetch`` asks Redis)."""
        return None if self.tier is None else self.tier.lookup(primary, request_headers)

    def fetch(self, primary: bytes, request_headers: Headers, with_part: bool,
              callback) -> None:
        """Ask Redis for ``primary``'s variant matching the request and, with
        ``with_part``, its stored part (a 206); ``callback(stored, part)``, each a
        ``Stored`` or None (a miss, or Redis failed), on a later turn of the loop."""
        found: dict[bytes, Stored | None] = {}
        wanted = (primary, partial_key(primary)) if with_part else (primary,)

        def got(key: bytes, stored: Stored | None) -> None:
            found[key] = stored
            if len(found) == len(wanted):
                callback(found[primary], found.get(wanted[-1]) if with_part else None)

        for key in wanted:
            self._fetch(key, request_headers, self._vary.get(key, ()), got, retry=True)

    def _fetch(self, primary: bytes, request_headers: Headers, names: tuple[bytes, ...],
               got, retry: bool) -> None:
        """One HMGET of the resource's Vary names and the variant ``names`` select; when
        the stored names differ, once more with them."""
        secondary = secondary_key(names, request_headers)
        head_field, body_field = variant_fields(secondary)

        def answered(reply, error) -> None:
            if error is not None:
                self._failed(error)
                got(primary, None)
                return
            vary, head, body = reply
            if vary is None:
                self._vary.pop(primary, None)
                got(primary, None)
                return
            stored_names = decode_vary(vary)
            if stored_names != names:
                self._remember_vary(primary, stored_names)
                if retry:
                    self._fetch(primary, request_headers, stored_names, got, retry=False)
                    return
            try:
                found = self._found(primary, secondary, head, body, request_headers)
            except Exception:
                # A bug must not leave the request waiting: it goes on as a miss.
                log.exception("cache store redis: cannot read the entry of %r", primary)
                found = None
            got(primary, found)

        self.client.command("HMGET", resource_key(primary), VARY_FIELD, head_field,
                            body_field, callback=answered)

    def _found(self, primary: bytes, secondary: bytes, head_data: bytes | None,
               body: bytes | None, request_headers: Headers) -> Stored | None:
        head = None if head_data is None or body is None else decode_head(head_data)
        if head is None or head.primary != primary or head.secondary != secondary or (
                head.body_length != len(body)):
            return None
        stored = Stored(primary, secondary, head.status, head.headers, head.request_time,
                        head.response_time, len(body), body=body)
        if self.tier is not None:
            kept = self._keep_in_tier(stored, request_headers)
            if kept is not None:
                return kept
        return stored

    def _keep_in_tier(self, stored: Stored, request_headers: Headers) -> Stored | None:
        """Copy a response found in Redis into the memory tier; the tier's own copy."""
        writer = self.tier.begin(stored.primary, request_headers, Meta(
            stored.status, stored.headers, stored.request_time, stored.response_time))
        if writer is None or not writer.write(stored.body) or not writer.commit():
            return None
        return self.tier.lookup(stored.primary, request_headers)

    def _remember_vary(self, primary: bytes, names: tuple[bytes, ...]) -> None:
        if len(self._vary) >= VARY_MEMO_SIZE:
            self._vary.clear()
        if names:
            self._vary[primary] = names
        else:
            self._vary.pop(primary, None)

    # -- writing -----------------------------------------------------------------------------
    def begin(self, primary: bytes, request_headers: Headers, meta: Meta
              ) -> RedisWriter | None:
        names = names_to_store(meta.headers, self.max_object)
        if names is None:
            return None
        announced = content_length(meta.headers)
        tier = None if self.tier is None else self.tier.begin(primary, request_headers, meta)
        to_redis = announced is None or announced <= self.redis_max_object
        if not to_redis and tier is None:
            return None
        return RedisWriter(self, primary, secondary_key(names, request_headers), names, meta,
                           tier, to_redis)

    def _send(self, primary: bytes, secondary: bytes, names: tuple[bytes, ...], meta: Meta,
              body: bytes) -> None:
        head = encode_head(primary, secondary, meta.status, meta.headers, meta.request_time,
                           meta.response_time, len(body))
        head_field, body_field = variant_fields(secondary)
        self._remember_vary(primary, names)
        STORE.run(self.client, [resource_key(primary)],
                  [encode_vary(names), head_field, head, body_field, body,
                   self._keep_ms(meta.status, meta.headers, meta.request_time,
                                 meta.response_time)],
                  callback=self._done)

    def _keep_ms(self, status: int, headers: Headers, request_time: float,
                 response_time: float) -> int:
        return int(keep_seconds(status, headers, request_time, response_time,
                                self.targets) * 1000)

    def update_headers(self, stored: Stored, headers: Headers, request_time: float,
                       response_time: float) -> bool:
        if self.tier is not None:
            self.tier.update_headers(stored, headers, request_time, response_time)
        if stored.body_length > self.redis_max_object:
            return True
        old = encode_head(stored.primary, stored.secondary, stored.status, stored.headers,
                          stored.request_time, stored.response_time, stored.body_length)
        new = encode_head(stored.primary, stored.secondary, stored.status, headers,
                          request_time, response_time, stored.body_length)
        head_field, _ = variant_fields(stored.secondary)
        UPDATE.run(self.client, [resource_key(stored.primary)],
                   [head_field, old, new, self._keep_ms(stored.status, headers, request_time,
                                                        response_time)],
                   callback=self._done)
        return True

    def _done(self, reply, error) -> None:
        if error is not None:
            self._failed(error)

    def _failed(self, error) -> None:
        """Redis did not do what it was asked. An outage is the link's to log (once);
        an error reply (``OOM`` when Redis is full with ``noeviction``) is logged here,
        at most once a minute per kind."""
        if isinstance(error, RedisReplyError):
            text = str(error)
            self._errors.error(text.split(" ", 1)[0], self.loop.time(),
                               "cache store redis: %s; responses carry on without the "
                               "shared cache", text)

    # -- removing ----------------------------------------------------------------------------
    def invalidate(self, primary: bytes) -> None:
        if self.tier is not None:
            self.tier.invalidate(primary)
        self.drop(primary, self._done)

    def purge(self, primary: bytes | None = None) -> int:
        """The memory tier's part of a purge (``drop`` is Redis's)."""
        return 0 if self.tier is None else self.tier.purge(primary)

    def drop(self, primary: bytes, callback) -> None:
        """Remove ``primary``'s responses and its stored part from Redis and tell every
        instance; ``callback(removed, error)``."""
        self._vary.pop(primary, None)
        DROP.run(self.client, [resource_key(primary), resource_key(partial_key(primary))],
                 [self.channel, primary], callback=callback)

    def _invalidated(self, channel: bytes, primary: bytes) -> None:
        """Another worker or instance removed ``primary`` (PURGE, or an unsafe method)."""
        self._vary.pop(primary, None)
        if self.tier is not None:
            self.tier.purge(primary)

    def _subscription_changed(self, up: bool) -> None:
        """Removals published while the subscription was down are lost: the memory
        tier may hold any of them, so it starts again empty."""
        if up and self.tier is not None:
            self.tier.purge(None)

    def stats(self) -> dict[str, int]:
        """The memory tier's figures (Redis keeps its own: INFO, DBSIZE)."""
        if self.tier is None:
            return {"entries": 0, "bytes": 0, "evictions": 0}
        return self.tier.stats()


class RedisWriter:
    """A body on its way into the memory tier and, when it ends, into Redis."""

    def __init__(self, store: RedisStore, primary: bytes, secondary: bytes,
                 names: tuple[bytes, ...], meta: Meta, tier, to_redis: bool) -> None:
        self._store = store
        self._primary = primary
        self._secondary = secondary
        self._names = names
        self._meta = meta
        self._tier = tier
        self._chunks: list[bytes] | None = [] if to_redis else None
        self.written = 0

    def write(self, chunk: bytes) -> bool:
        self.written += len(chunk)
        if self._tier is not None and not self._tier.write(chunk):
            self._tier = None
        if self._chunks is not None:
            if self.written > self._store.redis_max_object:
                self._chunks = None
            else:
                self._chunks.append(bytes(chunk))
        return self._tier is not None or self._chunks is not None

    def commit(self) -> bool:
        kept = self._tier is not None and self._tier.commit()
        self._tier = None
        chunks, self._chunks = self._chunks, None
        if chunks is None:
            return kept
        body = b"".join(chunks)
        if length_mismatch(self._meta.headers, len(body)):
            return kept
        self._store._send(self._primary, self._secondary, self._names, self._meta, body)
        return True

    def abort(self) -> None:
        if self._tier is not None:
            self._tier.abort()
            self._tier = None
        self._chunks = None
