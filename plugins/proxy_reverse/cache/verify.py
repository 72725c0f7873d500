"""Checking large disk bodies against their checksum, in the background.

A body above ``stores.disk.SMALL_BODY`` leaves its file through ``sendfile`` without
passing through the process, so it cannot be checked before it is sent. When such a
body is looked up, this worker reads it again on a duplicate of its descriptor, one
``STEP`` bytes per loop iteration (a bounded piece of work between two rounds of I/O),
and computes its CRC-32; on a mismatch the store removes the file, so the next request
fetches the resource anew. A file is checked again at most every ``RECHECK_SECONDS``
in a worker (it is known by its inode; a replaced file is a new one).

What this cannot do: the hit that starts the check is already on its way, so a body
damaged on disk can be served until its check ends (a few loop iterations later for a
body of a few megabytes), and once more per worker every ``RECHECK_SECONDS`` if it is
damaged in place after its check.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Callable

from .stores.disk import DiskStore
from .stores.disk_files import file_identity
from .stores.store import Stored

log = logging.getLogger("monkey_py.proxy_reverse")

STEP = 256 * 1024
RECHECK_SECONDS = 60.0
MEMO_SIZE = 4096


class BodyVerifier:
    """The background checks of one worker."""

    def __init__(self, loop, store: DiskStore, on_damage: Callable[[], None] = lambda: None
                 ) -> None:
        """``on_damage``: called after a damaged body was removed (to publish figures)."""
        self.loop = loop
        self.store = store
        self.on_damage = on_damage
        # When each file (inode, device) was last checked in this worker.
        self._checked: dict[tuple[int, int], float] = {}
        self._running: set[tuple[int, int]] = set()

    def check(self, stored: Stored) -> None:
        """Check ``stored``'s body file soon, unless it was checked lately."""
        path, ino, dev, crc = stored.handle
        identity = (ino, dev)
        now = self.loop.time()
        last = self._checked.get(identity)
        if identity in self._running or (last is not None and now - last < RECHECK_SECONDS):
            return
        try:
            fd = os.dup(stored.fd)
        except OSError:
            return
        self._running.add(identity)
        _Pass(self, fd, path, identity, stored.body_offset, stored.body_length, crc).start()

    def finished(self, identity: tuple[int, int], path: str, intact: bool) -> None:
        self._running.discard(identity)
        if len(self._checked) >= MEMO_SIZE:
            self._checked.clear()
        self._checked[identity] = self.loop.time()
        if not intact:
            self.store.damaged(path, identity)
            self.on_damage()


class _Pass:
    """One body read in steps; its CRC-32 compared with the one written with it."""

    __slots__ = ("verifier", "fd", "path", "identity", "position", "end", "expected", "crc")

    def __init__(self, verifier: BodyVerifier, fd: int, path: str, identity: tuple[int, int],
                 offset: int, length: int, expected: int) -> None:
        self.verifier = verifier
        self.fd = fd
        self.path = path
        self.identity = identity
        self.position = offset
        self.end = offset + length
        self.expected = expected
        self.crc = 0

    def start(self) -> None:
        self.verifier.loop.call_soon(self.step)

    def step(self) -> None:
        try:
            data = os.pread(self.fd, min(STEP, self.end - self.position), self.position)
        except OSError as exc:
            log.warning("cache file %s: cannot read it to check its body: %s", self.path,
                        exc.strerror or exc)
            self._end(intact=True)
            return
        if not data:
            self._end(intact=False)  # shorter than its head says
            return
        self.crc = zlib.crc32(data, self.crc)
        self.position += len(data)
        if self.position < self.end:
            self.verifier.loop.call_soon(self.step)
        else:
            self._end(intact=self.crc == self.expected)

    def _end(self, intact: bool) -> None:
        try:
            identity = file_identity(os.fstat(self.fd))
        except OSError:
            identity = None
        os.close(self.fd)
        self.verifier.finished(self.identity, self.path, intact or identity != self.identity)
