"""Lua scripts run in Redis by their SHA-1 (EVALSHA), sent whole (EVAL) only when Redis
does not know them yet (first use, or after a restart): a script runs atomically, in
one round trip, and its text crosses the network once per Redis rather than per call."""

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
