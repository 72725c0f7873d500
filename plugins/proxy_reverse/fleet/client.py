"""Commands to Redis from a worker's loop, each answered through a callback.

::

    redis = RedisClient(worker.loop, address)          # in monkey_worker_start
    redis.start()
    redis.command("SET", key, body, "PX", 30000)       # no callback: the reply is dropped
    redis.command("GET", key, callback=got)            # got(reply, error)
    redis.pipeline([("INCR", hits), ("EXPIRE", hits, 60)], callback=done)
    redis.close()                                      # in monkey_worker_stop

Arguments are bytes, str (sent as UTF-8), int or float. Each callback is called exactly
once, never from inside the call that sent the command: ``callback(reply, None)`` with
the reply (bytes, int, None for a missing key, a list for an array), or
``callback(None, error)`` with a :class:`~.errors.RedisError`. Commands of one loop
iteration leave in one write.
"""

from __future__ import annotations

from collections.abc import Sequence

import hiredis

from .errors import RedisReplyError, RedisUnavailable
from .link import RedisLink


class RedisClient(RedisLink):
    """The command link of a worker (see :class:`~.link.RedisLink` for its life)."""

    role = "commands"

    def command(self, *args, callback=None) -> None:
        """Send one command; ``callback(reply, error)`` when it is answered or failed.

        Fails at once (RedisUnavailable, soon after) while the link is not up.
        """
        data = hiredis.pack_command(args)
        conn = self._sender(1)
        if conn is None:
            self._refuse(callback, 1)
        else:
            conn.send(data, callback, self.loop.now + self.params.timeout)

    def pipeline(self, commands: Sequence[Sequence], callback) -> None:
        """Send ``commands`` together; ``callback(replies, error)`` once, when all are
        answered. ``error`` is None when every command succeeded. Otherwise it is a
        RedisUnavailable (``replies`` is None: the link failed, or was down and nothing
        was sent), or the first RedisReplyError (``replies`` holds every reply, the
        errors in their places). For a transaction, put MULTI first and EXEC last: the
        errors of the commands it ran stay inside EXEC's reply, as RedisReplyErrors.
        """
        packed = [hiredis.pack_command(tuple(args)) for args in commands]
        if not packed:
            self.loop.call_soon(lambda: callback([], None))
            return
        conn = self._sender(len(packed))
        if conn is None:
            self._refuse(lambda _, error: callback(None, error), len(packed))
            return
        replies = _Replies(len(packed), callback)
        deadline = self.loop.now + self.params.timeout
        for data in packed:
            conn.send(data, replies.add, deadline)


class _Replies:
    """The replies of a pipeline, gathered until the last one."""

    __slots__ = ("replies", "count", "error", "callback")

    def __init__(self, count: int, callback) -> None:
        self.replies: list = []
        self.count = count
        self.error = None
        self.callback = callback

    def add(self, reply, error) -> None:
        if error is not None:
            reply = error
            if self.error is None or isinstance(error, RedisUnavailable):
                self.error = error
        self.replies.append(reply)
        if len(self.replies) == self.count:
            failed = self.error is not None and not isinstance(self.error, RedisReplyError)
            self.callback(None if failed else self.replies, self.error)
