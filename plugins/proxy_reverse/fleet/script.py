"""Lua scripts run in Redis by their SHA-1 (EVALSHA): a script runs atomically, in one
round trip, and its text crosses the network once per connection rather than per call.

``preload`` loads scripts as each new connection comes up, before any other command
on it, so that EVALSHA finds them. Should Redis still not know one (its scripts were
flushed), ``run`` sends it whole (EVAL) after the NOSCRIPT reply; that retry leaves
after the commands sent meanwhile, which preloading avoids in the ordinary case.
"""

from __future__ import annotations

from hashlib import sha1

from .errors import RedisReplyError


class RedisScript:
    """One Lua script; ``run`` it on a :class:`~.client.RedisClient`."""

    def __init__(self, source: str) -> None:
        self.source = source.encode()
        self.sha = sha1(self.source).hexdigest()

    def run(self, client, keys, args, callback=None) -> None:
        """``EVALSHA`` with ``keys`` and ``args``; on ``NOSCRIPT``, the same by ``EVAL``.
        ``callback(reply, error)`` as for ``client.command``, once."""
        keys = list(keys)
        head = (len(keys), *keys, *args)

        def answered(reply, error) -> None:
            if isinstance(error, RedisReplyError) and str(error).startswith("NOSCRIPT"):
                client.command("EVAL", self.source, *head, callback=callback)
            elif callback is not None:
                callback(reply, error)

        client.command("EVALSHA", self.sha, *head, callback=answered)


def preload(client, scripts) -> None:
    """Load ``scripts`` into Redis on each new connection of ``client`` (and now, if it
    is up already)."""
    def load(up: bool) -> None:
        if up:
            for script in scripts:
                client.command("SCRIPT", "LOAD", script.source)

    client.watch(load)
    load(client.up)
