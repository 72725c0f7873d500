"""Request collapsing: while one request fetches a resource for the cache, the other
requests for it wait instead of going upstream too.

The first request that misses becomes the *fill*; the others register as waiters on the
loop (a timer each, no blocking) and are released when the fill ends, or when their
``CacheLockTimeout`` runs out, whichever comes first. Released, a waiter looks the
store up again and is served from it, or goes upstream itself without waiting again.

Within a worker the fills are a dictionary. With the disk store, a fill also holds a
lock file created with ``O_EXCL`` in the store's ``.locks`` directory, so the workers
collapse together: a request in another worker that finds the file waits until it is
gone, checking every ``POLL_SECONDS``. A lock file older than the lock timeout belongs
to a fill that died or runs too long, and is taken over.
"""

from __future__ import annotations

import os
import time
from hashlib import sha256
from typing import Callable

from .stores.trouble import FailureLog

POLL_SECONDS = 0.02
# Why a waiter was released; FAILED: the fetch met an upstream error (stale-if-error
# may then stand in for it without another attempt).
STORED, NOT_STORED, FAILED, ENDED_ELSEWHERE, TIMED_OUT = (
    "stored", "not-stored", "failed", "ended-elsewhere", "timed-out")


class Fill:
    """One fetch that waiters may wait for; ``done`` releases them.

    ``expires``: the loop time after which the fill no longer holds others back (the
    lock timeout): a later request leads a fetch of its own, as with a stale lock file.
    Every path of a request ends its fill; this bounds what a path we missed could cost.
    ``release``: what ends the fill's lock in the fleet (``fleet_locks.py``), if it holds one.
    """

    __slots__ = ("collapser", "key", "waiters", "lock_path", "finished", "expires", "release")

    def __init__(self, collapser: Collapser, key: bytes, lock_path: str | None,
                 expires: float) -> None:
        self.collapser = collapser
        self.key = key
        self.waiters: list[Waiter] = []
        self.lock_path = lock_path
        self.finished = False
        self.expires = expires
        self.release = None

    def done(self, stored: bool, failed: bool = False) -> None:
        """The fetch ended (``stored``: its response is in the store; ``failed``: the
        upstream failed it); idempotent."""
        if self.finished:
            return
        self.finished = True
        collapser = self.collapser
        if collapser.fills.get(self.key) is self:
            del collapser.fills[self.key]
        if self.lock_path is not None:
            try:
                os.unlink(self.lock_path)
            except OSError:
                pass
        if self.release is not None:
            self.release()
            self.release = None
        waiters, self.waiters = self.waiters, []
        why = STORED if stored else FAILED if failed else NOT_STORED
        for waiter in waiters:
            waiter.release(why)


class Waiter:
    """A request waiting for a fill, in this worker or (disk store) in another one."""

    __slots__ = ("collapser", "request", "callback", "deadline", "timer", "fill",
                 "lock_path", "cancelled")

    def __init__(self, collapser: Collapser, request, callback: Callable[[str], None],
                 deadline: float, fill: Fill | None, lock_path: str | None) -> None:
        self.collapser = collapser
        self.request = request
        self.callback = callback
        self.deadline = deadline
        self.fill = fill
        self.lock_path = lock_path
        self.cancelled = False
        loop = collapser.loop
        if fill is not None:
            self.timer = loop.call_at(deadline, self._expire)
        else:
            self.timer = loop.call_later(POLL_SECONDS, self._poll)
        request.on_abort = self.cancel

    def _expire(self) -> None:
        self.timer = None
        if self.fill is not None and self in self.fill.waiters:
            self.fill.waiters.remove(self)
        self.release(TIMED_OUT)

    def _poll(self) -> None:
        """Another worker's fill: released when its lock file is gone."""
        self.timer = None
        if not os.path.exists(self.lock_path):
            self.release(ENDED_ELSEWHERE)
        elif self.collapser.loop.time() >= self.deadline:
            self.release(TIMED_OUT)
        else:
            self.timer = self.collapser.loop.call_later(POLL_SECONDS, self._poll)

    def release(self, why: str) -> None:
        """Resume the request on the next loop iteration (not inside the fill's call)."""
        if self.timer is not None:
            self.collapser.loop.cancel(self.timer)
            self.timer = None
        self.collapser.loop.call_soon(lambda: self._resume(why))

    def _resume(self, why: str) -> None:
        if self.cancelled:
            return
        self.request.on_abort = None
        self.callback(why)

    def cancel(self) -> None:
        """The client left while waiting."""
        self.cancelled = True
        if self.timer is not None:
            self.collapser.loop.cancel(self.timer)
            self.timer = None
        if self.fill is not None and self in self.fill.waiters:
            self.fill.waiters.remove(self)


class Collapser:
    """The fills in progress in this worker; with ``lock_dir``, shared with the others."""

    def __init__(self, loop, lock_dir: str | None) -> None:
        self.loop = loop
        self.lock_dir = lock_dir
        self.fills: dict[bytes, Fill] = {}
        self.failures = FailureLog(
            "collapsing across workers is off until this is repaired: requests for the "
            "same resource collapse within each worker only")

    def _lock_path(self, key: bytes) -> str:
        return os.path.join(self.lock_dir, sha256(key).hexdigest()[:40])

    def _running(self, key: bytes) -> Fill | None:
        """The fill of ``key`` in this worker, unless it outlived its lock timeout."""
        fill = self.fills.get(key)
        if fill is not None and fill.expires <= self.loop.time():
            return None
        return fill

    def begin(self, key: bytes, lock_timeout: float) -> Fill | None:
        """Become the fill for ``key``; None when a fetch of it is already running."""
        if self._running(key) is not None:
            return None
        lock_path = None
        if self.lock_dir is not None:
            lock_path = self._lock_path(key)
            if not self._take(lock_path, lock_timeout):
                return None
        fill = self.fills[key] = Fill(self, key, lock_path, self.loop.time() + lock_timeout)
        return fill

    def _take(self, path: str, stale_after: float) -> bool:
        """Create the lock file; False while another worker's fresh one exists."""
        for _ in range(2):
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                return True
            except FileExistsError:
                try:
                    age = time.time() - os.stat(path).st_mtime
                except OSError:
                    continue
                if age <= stale_after:
                    return False
                try:
                    os.unlink(path)
                except OSError:
                    pass
            except OSError as exc:
                # The directory is unusable: collapse within this worker only, and say so.
                self.failures.failed(exc, f"cannot create the lock file {path}")
                return True
        return False

    def busy(self, key: bytes) -> bool:
        """Whether a fetch of ``key`` runs in this worker or, with locks, in another."""
        if self._running(key) is not None:
            return True
        return self.lock_dir is not None and os.path.exists(self._lock_path(key))

    def wait(self, key: bytes, request, timeout: float, callback: Callable[[str], None]
             ) -> None:
        """Wait for the fetch of ``key`` at most ``timeout`` seconds, then ``callback(why)``."""
        deadline = self.loop.time() + timeout
        fill = self._running(key)
        if fill is not None:
            fill.waiters.append(Waiter(self, request, callback, deadline, fill, None))
        else:
            Waiter(self, request, callback, deadline, None, self._lock_path(key))
