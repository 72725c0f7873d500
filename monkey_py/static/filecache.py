"""Open files kept between requests, like nginx's ``open_file_cache``.

A hot static file costs no ``open``, ``fstat`` or ``close`` per request: its entry holds
the stat result, the prebuilt header lines, and either the whole body (files up to
``SMALL_FILE`` bytes, sent with the head in one write) or an open descriptor for
``sendfile``. An entry is trusted for ``valid`` seconds; after that the next request
resolves and opens the path again and keeps the entry only if the file is the same
(inode, modification time, size), so a changed or deleted file is seen within ``valid``.

A descriptor lent to a response is reference-counted: an entry dropped while a
response still sends from it closes the descriptor when that response is done.
Entries not revalidated for ``INACTIVE`` seconds (nobody asked for them) are dropped by
a sweep, which also closes descriptors of files deleted meanwhile.
"""

from __future__ import annotations

import os

SMALL_FILE = 32 * 1024
# Bytes of small bodies one worker keeps at most.
BODY_BUDGET = 16 * 1024 * 1024
INACTIVE = 20.0
SWEEP_SECONDS = 5.0


class OpenFile:
    """One version of one file as served: metadata, head lines, body or descriptor."""

    __slots__ = ("identity", "size", "meta", "body", "fd", "checked", "users", "dropped")

    def __init__(self, fd: int, st: os.stat_result, meta, body: bytes | None,
                 now: float) -> None:
        self.identity = (st.st_ino, st.st_mtime_ns, st.st_size)
        self.size = st.st_size
        self.meta = meta
        self.body = body
        # None when the body is held in memory.
        self.fd = None if body is not None else fd
        self.checked = now
        self.users = 0
        self.dropped = False

    def lend(self):
        """Lend the descriptor to one response; returns what to call when it is done."""
        self.users += 1
        return self.give_back

    def give_back(self, fd: int) -> None:
        self.users -= 1
        if self.dropped and not self.users:
            os.close(fd)

    def drop(self) -> None:
        self.dropped = True
        if self.fd is not None and not self.users:
            os.close(self.fd)


def read_small(fd: int, size: int) -> bytes | None:
    """The whole content of a regular file of ``size`` bytes; None if it changed size."""
    parts = []
    left = size
    while left > 0:
        data = os.read(fd, left)
        if not data:
            return None
        parts.append(data)
        left -= len(data)
    if os.read(fd, 1):
        return None
    return b"".join(parts)


class OpenFileCache:
    """Entries by key (site and request path), in insertion order, bounded in number
    and in body bytes; the oldest go first."""

    def __init__(self, loop, capacity: int, valid: float) -> None:
        self.loop = loop
        self.capacity = capacity
        self.valid = valid
        self.entries: dict = {}
        self.body_bytes = 0
        self._sweeper = None

    def get(self, key) -> OpenFile | None:
        """The entry for ``key`` if it was checked within ``valid`` seconds."""
        entry = self.entries.get(key)
        if entry is not None and self.loop.now - entry.checked < self.valid:
            return entry
        return None

    def keep(self, key, fd: int, st: os.stat_result, make_meta) -> OpenFile:
        """The entry for the file just opened as ``fd``: the cached one if it is the same
        file (``fd`` is then closed), else a new one. Takes ownership of ``fd``."""
        now = self.loop.now
        old = self.entries.pop(key, None)
        if old is not None:
            if old.identity == (st.st_ino, st.st_mtime_ns, st.st_size):
                os.close(fd)
                old.checked = now
                self.entries[key] = old
                return old
            self._forget(old)
        body = None
        if st.st_size <= SMALL_FILE:
            body = read_small(fd, st.st_size)
        entry = OpenFile(fd, st, make_meta(), body, now)
        if body is not None:
            os.close(fd)
        if self.capacity:
            if body is not None:
                self.body_bytes += len(body)
            self.entries[key] = entry
            self._bound()
            if self._sweeper is None:
                self._sweeper = self.loop.call_later(SWEEP_SECONDS, self._sweep)
        return entry

    def served(self, entry: OpenFile) -> None:
        """A response took what it needs of ``entry``: without a cache, let it go."""
        if not self.capacity:
            entry.drop()

    def _forget(self, entry: OpenFile) -> None:
        if entry.body is not None:
            self.body_bytes -= len(entry.body)
        entry.drop()

    def _bound(self) -> None:
        entries = self.entries
        while len(entries) > self.capacity or self.body_bytes > BODY_BUDGET:
            self._forget(entries.pop(next(iter(entries))))

    def _sweep(self) -> None:
        self._sweeper = None
        horizon = self.loop.now - INACTIVE
        for key in [key for key, entry in self.entries.items() if entry.checked < horizon]:
            self._forget(self.entries.pop(key))
        if self.entries:
            self._sweeper = self.loop.call_later(SWEEP_SECONDS, self._sweep)

    def close(self) -> None:
        for entry in self.entries.values():
            self._forget(entry)
        self.entries.clear()
        if self._sweeper is not None:
            self.loop.cancel(self._sweeper)
            self._sweeper = None
