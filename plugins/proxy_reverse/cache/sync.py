"""Invalidations and purges reach every worker's memory store through a shared log.

Each worker keeps its own memory store, so a PURGE, or a POST that invalidates a URI,
answered by one worker must also reach the others. The worker that removes a key
appends it to a ring in shared memory (under the shared lock: this is rare); every
worker reads the ring's sequence number (one int64) before it looks a request up, and
removes the keys appended since it last looked. A worker that fell more than a ring
behind, or a key longer than a slot, empties its whole store: never serve what was
removed. The disk store is one directory for all workers and needs none of this.
"""

from __future__ import annotations

from typing import Callable

from monkey_py.shared import SharedMemory

RING = 256
KEY_BYTES = 1024
SLOT = 2 + KEY_BYTES // 8          # event number, key length (-1: everything), key bytes


class InvalidationLog:
    """The ring of removed primary keys, shared by the workers."""

    def __init__(self) -> None:
        self.shared = SharedMemory(1 + RING * SLOT)
        self.bytes = self.shared.slots.cast("B")
        self.seen = 0

    def worker_started(self) -> None:
        """A new worker's store is empty: nothing published before now concerns it."""
        self.seen = self.shared.slots[0]

    def publish(self, key: bytes | None) -> None:
        """Tell the other workers to remove ``key`` (None: everything)."""
        slots = self.shared.slots
        with self.shared.lock:
            number = slots[0] + 1
            base = 1 + (number % RING) * SLOT
            if key is None or len(key) > KEY_BYTES:
                slots[base + 1] = -1
            else:
                start = (base + 2) * 8
                self.bytes[start:start + len(key)] = key
                slots[base + 1] = len(key)
            slots[base] = number
            slots[0] = number
        if self.seen == number - 1:
            self.seen = number

    def poll(self, remove: Callable[[bytes | None], object]) -> None:
        """Call ``remove(key)`` for every key published since the last poll."""
        slots = self.shared.slots
        last = slots[0]
        if last == self.seen:
            return
        first = self.seen + 1
        self.seen = last
        if last - first >= RING:
            remove(None)
            return
        for number in range(first, last + 1):
            base = 1 + (number % RING) * SLOT
            length = slots[base + 1]
            start = (base + 2) * 8
            key = bytes(self.bytes[start:start + length]) if length >= 0 else None
            if slots[base] != number or slots[0] + 1 >= number + RING:
                # Overwritten, or about to be, while read: a whole ring behind.
                remove(None)
                return
            remove(key)
