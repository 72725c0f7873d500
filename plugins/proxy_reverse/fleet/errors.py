"""What a Redis command's callback gets instead of a reply.

Each command's callback receives exactly one outcome: a reply, or one of these errors.
They are delivered, never raised: Redis being slow or down is a state of the fleet that
callers fall back from (a miss goes upstream, health stays local), not a failure.
"""

from __future__ import annotations


class RedisError(Exception):
    """A command did not get the reply it asked for."""


class RedisReplyError(RedisError):
    """Redis answered with an error reply (``-ERR ...``, ``-WRONGTYPE ...``); the
    connection is fine. Its text is Redis's message."""


class RedisUnavailable(RedisError):
    """No reply can be had: Redis is down or being connected to (the command was not
    sent), or the connection broke before the reply (it may or may not have run)."""


class RedisTimeout(RedisUnavailable):
    """No reply within the command timeout. Later replies could no longer be matched to
    their commands, so the connection was closed and is being opened again."""
