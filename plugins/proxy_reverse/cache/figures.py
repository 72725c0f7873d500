"""The cache's figures, shared by all workers like the upstream statistics (``stats.py``).

Shared int64 memory created in the master before the fork: each worker writes only its
own row (one writer per slot, no lock) and a reader sums the rows. A row holds one cell
of counters per proxy entry, then the size of the worker's store. A memory store is per
worker, so the sizes add up; the disk store is one directory that every worker
estimates, so the largest estimate is shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from monkey_py.shared import SharedMemory

# Counters of one entry's cell, in slot order.
COUNTERS = ("hits", "stale", "misses", "revalidated", "stored", "purged", "collapsed")
HITS, STALE, MISSES, REVALIDATED, STORED, PURGED, COLLAPSED = range(len(COUNTERS))
# The store's figures at the end of a row: its size, then counters of the disk store
# (bodies found damaged, write errors by cause; stores/trouble.py).
STORE_BYTES, STORE_ENTRIES, STORE_EVICTIONS, STORE_DAMAGED = range(4)
WRITE_ERRORS = ("no-space", "read-only", "other")
STORE_CELL = 4 + len(WRITE_ERRORS)


@dataclass
class CacheFigures:
    """One entry's cache counters summed over the workers.

    ``hits``: served fresh from the cache; ``stale``: served stale (stale-while-revalidate,
    max-stale, stale-if-error); ``misses``: forwarded upstream (revalidations included);
    ``revalidated``: forwarded revalidations answered 304 and served from the cache;
    ``stored``: responses stored; ``purged``: responses removed by PURGE; ``collapsed``:
    requests that waited for another request's fetch instead of going upstream.
    """

    entry: str
    hits: int
    stale: int
    misses: int
    revalidated: int
    stored: int
    purged: int
    collapsed: int

    @property
    def hit_ratio(self) -> float | None:
        """Share of the answers given from the cache (fresh or stale), None before any."""
        served = self.hits + self.stale
        total = served + self.misses
        return served / total if total else None


@dataclass
class StoreFigures:
    """The store: its kind, its limit, and what it holds; for the disk store also the
    bodies found damaged (and removed) and the writes that failed, by cause
    (``no-space``, ``read-only``, ``other``), summed over the workers."""

    kind: str
    max_bytes: int
    bytes: int
    entries: int
    evictions: int
    damaged: int = 0
    write_errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WRITE_ERRORS, 0))


class CacheStats:
    """The shared cache counters of one configuration."""

    def __init__(self, labels: list[str], workers: int, kind: str, max_bytes: int) -> None:
        """``labels``: one per entry slot (the entry's file:line)."""
        self.labels = labels
        self.workers = workers
        self.kind = kind
        self.max_bytes = max_bytes
        self.stride = len(labels) * len(COUNTERS) + STORE_CELL
        self.shared = SharedMemory(self.stride * workers)
        self.row = 0

    def worker_started(self, index: int) -> None:
        """Point this process at row ``index``; a replacement worker keeps the counters
        of the one it replaces, but its memory store starts empty."""
        self.row = index * self.stride
        store = self.row + len(self.labels) * len(COUNTERS)
        self.shared.slots[store + STORE_BYTES] = 0
        self.shared.slots[store + STORE_ENTRIES] = 0

    def count(self, slot: int, counter: int, amount: int = 1) -> None:
        self.shared.slots[self.row + slot * len(COUNTERS) + counter] += amount

    def store_size(self, figures: dict[str, int]) -> None:
        """Record the store's own ``stats()`` (bytes, entries, evictions) for this worker."""
        base = self.row + len(self.labels) * len(COUNTERS)
        slots = self.shared.slots
        slots[base + STORE_BYTES] = figures["bytes"]
        slots[base + STORE_ENTRIES] = figures["entries"]
        slots[base + STORE_EVICTIONS] = figures["evictions"]
        slots[base + STORE_DAMAGED] = figures.get("damaged", 0)
        for index, cause in enumerate(WRITE_ERRORS, STORE_DAMAGED + 1):
            slots[base + index] = figures.get(f"write-errors-{cause}", 0)

    def entries(self) -> list[CacheFigures]:
        """Every entry's counters, in slot order, summed over the workers."""
        slots = self.shared.slots
        width = len(COUNTERS)
        result = []
        for slot, label in enumerate(self.labels):
            sums = [0] * width
            for worker in range(self.workers):
                base = worker * self.stride + slot * width
                for counter in range(width):
                    sums[counter] += slots[base + counter]
            result.append(CacheFigures(label, *sums))
        return result

    def store(self) -> StoreFigures:
        """The store's size: summed over the workers' memory stores, or the disk's."""
        slots = self.shared.slots
        offset = len(self.labels) * len(COUNTERS)
        rows = [worker * self.stride + offset for worker in range(self.workers)]
        sizes = [slots[row + STORE_BYTES] for row in rows]
        counts = [slots[row + STORE_ENTRIES] for row in rows]
        evictions = sum(slots[row + STORE_EVICTIONS] for row in rows)
        damaged = sum(slots[row + STORE_DAMAGED] for row in rows)
        errors = {cause: sum(slots[row + index] for row in rows)
                  for index, cause in enumerate(WRITE_ERRORS, STORE_DAMAGED + 1)}
        if self.kind == "disk":
            return StoreFigures(self.kind, self.max_bytes, max(sizes), max(counts), evictions,
                                damaged, errors)
        return StoreFigures(self.kind, self.max_bytes, sum(sizes), sum(counts), evictions,
                            damaged, errors)
