"""Password checks off the event loop, and a memory of credentials recently accepted.

A scrypt check costs tens to hundreds of milliseconds: run on the loop, it would stall
every connection of the worker. Checks run in a small thread pool instead (scrypt
releases the GIL); each result comes back to the loop through a socket pair the loop
watches, and its callback runs there.

Credentials that passed are remembered, keyed by an HMAC of the users file and the
``Authorization`` value under a secret drawn by each worker, so that a browser
repeating them on every request costs one HMAC, not one scrypt. Failures are never
remembered: a wrong password always costs a full check, the same as an unknown user.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import socket
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor

from monkey_py.loop import EVENT_READ

log = logging.getLogger("monkey_py.auth")

THREADS = 2
MAX_PENDING = 128
REMEMBERED = 1024


class Check:
    """One check in flight; ``cancel()`` when its request goes away."""

    __slots__ = ("callback", "cancelled")

    def __init__(self, callback) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Verifier:
    """The checks of one worker: a thread pool, its wake-up socket, the remembered keys."""

    def __init__(self, loop) -> None:
        self.loop = loop
        self.secret = os.urandom(32)
        self.remembered: OrderedDict[bytes, str] = OrderedDict()
        self.pending = 0
        self._done: deque = deque()
        self._pool: ThreadPoolExecutor | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        loop.add(self._wake_r, EVENT_READ, self._on_wake)

    def memo_key(self, users, authorization: bytes) -> bytes:
        return hmac.digest(self.secret, str(users.path).encode() + b"\0" + authorization,
                           hashlib.sha256)

    def remembered_user(self, key: bytes) -> str | None:
        name = self.remembered.get(key)
        if name is not None:
            self.remembered.move_to_end(key)
        return name

    def check(self, users, name: str, password: bytes, key: bytes, callback) -> Check | None:
        """Check ``name``/``password`` against ``users`` in a thread; ``callback(ok)`` runs
        on the loop. None when too many checks wait already (the caller answers 503)."""
        if self.pending >= MAX_PENDING:
            return None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="auth")
        self.pending += 1
        check = Check(callback)

        def run() -> None:
            try:
                ok = users.check(name, password)
            except Exception:
                log.exception("auth: checking a password failed")
                ok = False
            self._done.append((check, ok, key, name))
            try:
                self._wake_w.send(b"\0")
            except (BlockingIOError, InterruptedError):
                pass  # the loop has wake-ups waiting already

        self._pool.submit(run)
        return check

    def _on_wake(self, _mask: int) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        done = self._done
        while done:
            check, ok, key, name = done.popleft()
            self.pending -= 1
            if ok:
                self.remembered[key] = name
                if len(self.remembered) > REMEMBERED:
                    self.remembered.popitem(last=False)
            if not check.cancelled:
                try:
                    check.callback(ok)
                except Exception:
                    log.exception("auth: answering after a password check failed")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.loop.remove(self._wake_r)
        self._wake_r.close()
        self._wake_w.close()
