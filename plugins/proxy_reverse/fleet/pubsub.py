"""Pub/sub messages from Redis, on a connection of their own in subscribe mode.

::

    events = RedisSubscriber(worker.loop, address)
    events.subscribe("monkey:purge", on_purge)         # on_purge(channel, message)
    events.psubscribe("monkey:health:*", on_health)    # channel matched by the pattern
    events.watch(on_change)                            # on_change(up): messages missed?
    events.start()

Handlers get the channel and the message as bytes. The subscriptions are the
subscriber's, not the connection's: every new connection subscribes to all of them
again, so they survive Redis restarts and outages. Messages published while the link
was down are lost (pub/sub keeps nothing): a handler whose state depends on every
message resynchronises when ``watch`` says the link is up again. Publish with a
:class:`~.client.RedisClient`; a subscribed connection cannot.
"""

from __future__ import annotations

from functools import partial

import hiredis

from .connection import RedisConnection, log
from .errors import RedisReplyError
from .link import RedisLink


class RedisSubscriber(RedisLink):
    """The subscription link of a worker (see :class:`~.link.RedisLink` for its life)."""

    role = "subscriptions"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Handlers by channel, and by pattern.
        self.channels: dict[bytes, list] = {}
        self.patterns: dict[bytes, list] = {}

    def subscribe(self, channel: bytes | str, handler) -> None:
        """Call ``handler(channel, message)`` for each message published on ``channel``."""
        self._add(self.channels, "SUBSCRIBE", channel, handler)

    def unsubscribe(self, channel: bytes | str, handler) -> None:
        """Stop calling ``handler`` for ``channel`` (Redis is told once none is left)."""
        self._remove(self.channels, "UNSUBSCRIBE", channel, handler)

    def psubscribe(self, pattern: bytes | str, handler) -> None:
        """Call ``handler(channel, message)`` for each message on a channel that matches
        the glob-style ``pattern`` (``monkey:health:*``)."""
        self._add(self.patterns, "PSUBSCRIBE", pattern, handler)

    def punsubscribe(self, pattern: bytes | str, handler) -> None:
        """Stop calling ``handler`` for ``pattern``."""
        self._remove(self.patterns, "PUNSUBSCRIBE", pattern, handler)

    def _add(self, table: dict, verb: str, name: bytes | str, handler) -> None:
        name = _as_bytes(name)
        handlers = table.setdefault(name, [])
        handlers.append(handler)
        if len(handlers) == 1:
            self._send(verb, name)

    def _remove(self, table: dict, verb: str, name: bytes | str, handler) -> None:
        name = _as_bytes(name)
        handlers = table.get(name, [])
        if handler in handlers:
            handlers.remove(handler)
            if not handlers:
                del table[name]
                self._send(verb, name)

    def _send(self, verb: str, name: bytes) -> None:
        """Tell Redis now if the link is up; a new connection subscribes to all anyway."""
        if self.connection is not None:
            self._tell_redis(self.connection, verb, name)

    def _tell_redis(self, conn: RedisConnection, verb: str, name: bytes) -> None:
        self.state.commands += 1
        conn.send(hiredis.pack_command((verb, name)), partial(_answered, verb, name),
                  self.loop.now + self.params.timeout)

    # -- the link's connections -----------------------------------------------------------
    def restore(self, conn: RedisConnection) -> None:
        for verb, table in (("SUBSCRIBE", self.channels), ("PSUBSCRIBE", self.patterns)):
            for name in table:
                self._tell_redis(conn, verb, name)

    def pushed(self, reply: list) -> None:
        """A message: ``[message, channel, data]`` or ``[pmessage, pattern, channel, data]``."""
        if len(reply) == 3:
            handlers = self.channels.get(reply[1], ())
        else:
            handlers = self.patterns.get(reply[1], ())
        channel, message = reply[-2], reply[-1]
        for handler in tuple(handlers):
            try:
                handler(channel, message)
            except Exception:
                log.exception("redis: the handler of a message on %r failed", channel)


def _answered(verb: str, name: bytes, reply, error) -> None:
    """A refusal (an ACL user without the channel, say) is a configuration mistake that
    would otherwise go unseen; a failed connection is the link's to report."""
    if isinstance(error, RedisReplyError):
        log.error("redis: %s %r refused: %s", verb, name, error)


def _as_bytes(name: bytes | str) -> bytes:
    return name.encode() if isinstance(name, str) else name
