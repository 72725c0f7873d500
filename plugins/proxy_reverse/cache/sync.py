"""Invalidations and purges reach every worker's memory store through a shared log, and
each worker says there what it removed.

Each worker keeps its own memory store, so a PURGE, or a POST that invalidates a URI,
answered by one worker must also reach the others. The worker that removes a key
appends it to a ring in shared memory (under the shared lock: this is rare); every
worker reads the ring's sequence number (one int64) before it looks a request up and on
a short timer (``SYNC_SECONDS``), and removes the keys appended since it last looked.
A worker that fell more than a ring behind, or a key longer than a slot, empties its
whole store: never serve what was removed. The disk store is one directory for all
workers and needs none of this.

Each worker also has a row of its own (one writer, no lock): the last record it
applied, a heartbeat (the monotonic clock, which every process on the machine shares,
in milliseconds) and, per record, how many responses it removed. A PURGE answer reads
the rows (``outcome``) to say what happened in every live worker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from monkey_py.shared import SharedMemory

RING = 256
KEY_BYTES = 1024
SLOT = 2 + KEY_BYTES // 8          # event number, key length (-1: everything), key bytes
# A worker's row: the last record applied, its heartbeat, then (record, removed) pairs.
APPLIED, HEARTBEAT, RESULTS = 0, 1, 2
ROW = RESULTS + 2 * RING
# Removed count of a worker that emptied its whole store instead of removing one key.
EMPTIED = -1
# How often every worker applies the log without a request to prompt it.
SYNC_SECONDS = 0.05
# A worker whose heartbeat is older than this is not running (it died, and its
# replacement starts with an empty store): nobody waits for it. Longer than a PURGE
# waits (purge.PURGE_WAIT), so that a worker merely stalled shows as not confirming.
LIVE_SECONDS = 5.0


def clock_ms() -> int:
    """The machine's monotonic clock in milliseconds, the same in every process."""
    return int(time.monotonic() * 1000)


@dataclass
class Outcome:
    """What the workers did about one record: ``removed`` responses in all (a worker
    that emptied its store counts as ``emptied``), how many workers ``confirmed`` it,
    and how many live ones have not yet (``pending``)."""

    removed: int = 0
    confirmed: int = 0
    pending: int = 0
    emptied: int = 0


class InvalidationLog:
    """The ring of removed primary keys and the workers' rows, shared by the workers."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self.rows = 1 + RING * SLOT
        self.shared = SharedMemory(self.rows + workers * ROW)
        self.bytes = self.shared.slots.cast("B")
        self.seen = 0
        self.index = 0

    def _row(self, index: int) -> int:
        return self.rows + index * ROW

    def worker_started(self, index: int = 0) -> None:
        """A new worker's store is empty: nothing published before now concerns it."""
        self.index = index
        self.seen = self.shared.slots[0]
        self._applied()

    def worker_stopped(self) -> None:
        """This worker stops: nobody waits for it any more."""
        self.shared.slots[self._row(self.index) + HEARTBEAT] = 0

    def _applied(self) -> None:
        slots = self.shared.slots
        row = self._row(self.index)
        slots[row + APPLIED] = self.seen
        slots[row + HEARTBEAT] = clock_ms()

    def publish(self, key: bytes | None) -> int:
        """Tell every worker, this one included, to remove ``key`` (None: everything);
        returns the record's number. The removal happens at the next ``poll``."""
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
        return number

    def poll(self, remove: Callable[[bytes | None], int]) -> None:
        """Call ``remove(key)`` for every key published since the last poll (it returns
        how many responses it removed), record the results, and beat the heartbeat."""
        slots = self.shared.slots
        last = slots[0]
        if last != self.seen:
            self._apply(remove, last)
        slots[self._row(self.index) + HEARTBEAT] = clock_ms()

    def _apply(self, remove: Callable[[bytes | None], int], last: int) -> None:
        slots = self.shared.slots
        first = self.seen + 1
        self.seen = last
        if last - first >= RING:
            self._emptied(remove, first, last)
            return
        results = self._row(self.index) + RESULTS
        for number in range(first, last + 1):
            base = 1 + (number % RING) * SLOT
            length = slots[base + 1]
            start = (base + 2) * 8
            key = bytes(self.bytes[start:start + length]) if length >= 0 else None
            if slots[base] != number or slots[0] + 1 >= number + RING:
                # Overwritten, or about to be, while read: a whole ring behind.
                self._emptied(remove, number, last)
                return
            removed = remove(key)
            pair = results + 2 * (number % RING)
            slots[pair + 1] = EMPTIED if key is None else removed
            slots[pair] = number
        slots[self._row(self.index) + APPLIED] = last

    def _emptied(self, remove: Callable[[bytes | None], int], first: int, last: int) -> None:
        """Too far behind to read the records: empty the store, and say so for them."""
        remove(None)
        slots = self.shared.slots
        results = self._row(self.index) + RESULTS
        for number in range(max(first, last - RING + 1), last + 1):
            pair = results + 2 * (number % RING)
            slots[pair + 1] = EMPTIED
            slots[pair] = number
        slots[self._row(self.index) + APPLIED] = last

    def outcome(self, number: int) -> Outcome:
        """What every worker did about record ``number`` so far. A worker that applied
        the log past it but whose result was overwritten since counts as confirmed."""
        slots = self.shared.slots
        now = clock_ms()
        found = Outcome()
        for index in range(self.workers):
            row = self._row(index)
            if slots[row + APPLIED] >= number:
                found.confirmed += 1
                pair = row + RESULTS + 2 * (number % RING)
                if slots[pair] == number:
                    removed = slots[pair + 1]
                    if removed == EMPTIED:
                        found.emptied += 1
                    else:
                        found.removed += removed
            elif 0 < slots[row + HEARTBEAT] >= now - LIVE_SECONDS * 1000:
                found.pending += 1
        return found
