"""Upstream statistics shared by all workers.

A worker counts in plain local objects (a :class:`Tally` per upstream: two list
appends per response, no shared memory touched) and publishes them into its own row of
int64 counters in shared memory every ``PUBLISH_SECONDS`` (one writer per slot, so no
lock); a reader sums the rows. Created in the master before the fork, so the status page
of any worker shows the figures of all of them, at most ``PUBLISH_SECONDS`` old (its
own worker's publish first, so they are current). Failures are rare and publish their
error text and offline time at once.

A row holds one cell per upstream, then one per entry, then the worker's traffic. An
upstream's cell has the counters (with the responses by status class and the bytes each
way), the share of its weight the worker gives it (slow start), when the worker last
took it offline and let it back, the latency histogram (``latency.py``), the last
error's text (written under a sequence number so a reader never takes half of it) and a
ring of per-second counters for the last minute (``history.py``). An entry's cell has
its queue and retry figures and whether the worker is in panic mode. The traffic cell is
a ring of the same counters over all upstreams, ten seconds a bucket, for the last ten
minutes.
Times are read from the monotonic clock, which every process of the machine shares; a
publication counts into the ring buckets of the second and the interval it happens in.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections import Counter
from typing import Callable

from monkey_py.shared import SharedMemory

from .history import INTERVAL_SECONDS, INTERVALS, TICK, Traffic, add_ring, tick
from .latency import LATENCY_BUCKETS, WINDOW, WINDOW_RING, WINDOWS, add_recent, cumulative, \
    window_of
from .snapshots import EntrySnapshot, UpstreamSnapshot

# How often a worker's local counts reach the shared memory.
PUBLISH_SECONDS = 0.25
# The per-second history covers this many completed seconds.
HISTORY_SECONDS = 60
ERROR_BYTES = 120

# The int64 slots of one cell (one upstream in one worker's row).
REQUESTS, RESPONSES, FAILURES, ACTIVE, LATENCY_US, OFFLINE_UNTIL_MS, ERROR_AT_MS, \
    ERROR_SEQ, ERROR_LEN, WEIGHT_PERMILLE, BYTES_IN, BYTES_OUT, OFFLINE_SINCE_MS, \
    ONLINE_SINCE_MS = range(14)
# Responses by status class: 1xx to 5xx (a status above 599 counts as 5xx). The index
# of each status's class is looked up (llhttp reads three digits, so 999 at most).
STATUS_CLASSES = 5
CLASS_OF = tuple(min(max(status // 100, 1), STATUS_CLASSES) - 1 for status in range(1000))
CLASSES = 14
ERROR_TEXT = CLASSES + STATUS_CLASSES
BUCKETS = ERROR_TEXT + ERROR_BYTES // 8
RING = BUCKETS + len(LATENCY_BUCKETS) + 1
# The ring keeps the current, still counting, second besides the completed ones.
RING_SIZE = HISTORY_SECONDS + 1
# Then the latency histogram's windows of the last minute (latency.py).
RECENT = RING + TICK * RING_SIZE
CELL = RECENT + WINDOW_RING
TRAFFIC_CELL = TICK * (INTERVALS + 1)
# The slots of an entry's cell: gauges (waiting, panic) and counters.
WAITING, QUEUE_FULL, QUEUE_TIMEOUTS, RETRIES, RETRIES_DENIED, PANIC = range(6)
ENTRY_CELL = 6


class Tally:
    """One upstream's counts in this worker since they were last published.

    A response costs two list appends (``responded``); the histogram and the status
    classes are worked out from the lists when the tally is published (``answers``),
    by sorting and counting in C, a few times a second.
    """

    __slots__ = ("requests", "failures", "active", "latencies", "statuses", "bytes_in",
                 "bytes_out", "weight_share")

    def __init__(self) -> None:
        self.requests = self.failures = self.active = 0
        self.bytes_in = self.bytes_out = 0
        self.latencies: list[float] = []
        self.statuses: list[int] = []
        self.weight_share = 1.0

    def responded(self, latency: float, status: int) -> None:
        """A response head with ``status`` arrived ``latency`` seconds after the
        attempt started."""
        self.latencies.append(latency)
        self.statuses.append(status)

    def answers(self) -> tuple[float, list[int], list[int]]:
        """The responses counted since the last call, and the tally starts afresh:
        their total latency in seconds, the histogram's bucket counts
        (``LATENCY_BUCKETS``, then +Inf) and the counts by status class (1xx to 5xx)."""
        latencies, statuses = self.latencies, self.statuses
        self.latencies, self.statuses = [], []
        latencies.sort()
        buckets = []
        below = 0
        for bound in LATENCY_BUCKETS:
            upto = bisect_right(latencies, bound, below)
            buckets.append(upto - below)
            below = upto
        buckets.append(len(latencies) - below)
        classes = [0] * STATUS_CLASSES
        for status, count in Counter(statuses).items():
            classes[CLASS_OF[status]] += count
        return sum(latencies), buckets, classes


class EntryTally:
    """One entry's queue and retry figures in this worker: counters since they were
    last published, and the current gauges."""

    __slots__ = ("waiting", "queue_full", "queue_timeouts", "retries", "retries_denied",
                 "panic")

    def __init__(self) -> None:
        self.waiting = self.queue_full = self.queue_timeouts = 0
        self.retries = self.retries_denied = 0
        self.panic = False


class ProxyStats:
    """The shared counters of one configuration's upstreams and entries."""

    def __init__(self, labels: list[tuple[str, str, bool]], workers: int,
                 clock: Callable[[], float] = time.monotonic,
                 entries: list[str] | None = None) -> None:
        """``labels``: (entry, upstream name, backup) for each statistics slot;
        ``entries``: the entry labels (by default those ``labels`` name, in order)."""
        self.labels = labels
        self.entries = list(dict.fromkeys(label for label, _, _ in labels)
                            if entries is None else entries)
        self.workers = workers
        self.clock = clock
        self.since = time.time()
        self.started = clock()
        self.entry_base = len(labels) * CELL
        self.traffic_base = self.entry_base + len(self.entries) * ENTRY_CELL
        self.stride = self.traffic_base + TRAFFIC_CELL
        self.shared = SharedMemory(max(1, self.stride * workers))
        self.slots = self.shared.slots
        self.bytes = self.shared.slots.cast("B")
        self.row = 0
        # Only a worker publishes, into its own row (set by worker_started).
        self.publishing = False
        # Where each upstream's cell starts in this worker's row.
        self.bases = [slot * CELL for slot in range(len(labels))]
        # This worker's counts not yet published, per upstream and per entry.
        self.tallies = [Tally() for _ in labels]
        self.entry_tallies = [EntryTally() for _ in self.entries]

    def worker_started(self, index: int) -> None:
        """Point this process at row ``index``.

        A worker that replaces a dead one keeps its predecessor's totals, so the counters
        never go back; connections and offline marks died with the old process.
        """
        self.row = index * self.stride
        self.publishing = True
        self.bases = [self.row + slot * CELL for slot in range(len(self.labels))]
        self.tallies = [Tally() for _ in self.labels]
        self.entry_tallies = [EntryTally() for _ in self.entries]
        slots = self.shared.slots
        now_ms = int(self.clock() * 1000)
        for slot in range(len(self.labels)):
            base = self.row + slot * CELL
            slots[base + ACTIVE] = 0
            self._mark_offline(base, 0, now_ms)
            slots[base + WEIGHT_PERMILLE] = 1000
            if slots[base + ERROR_SEQ] & 1:
                slots[base + ERROR_SEQ] += 1
        for number in range(len(self.entries)):
            base = self.row + self.entry_base + number * ENTRY_CELL
            slots[base + WAITING] = slots[base + PANIC] = 0

    # -- counting: this worker's tallies -----------------------------------------------
    def opened(self, slot: int) -> None:
        self.tallies[slot].active += 1

    def closed(self, slot: int) -> None:
        self.tallies[slot].active -= 1

    def responded(self, slot: int, latency: float, status: int = 200) -> None:
        """A response head with ``status`` arrived ``latency`` seconds after the
        attempt started."""
        self.tallies[slot].responded(latency, status)

    def failed(self, slot: int, reason: str, offline_until: float,
               responded: bool = False) -> None:
        """An attempt failed because of ``reason``: counted, and its error and the
        upstream's offline time (monotonic; 0: online) published at once.

        ``responded``: the failure broke off a response already counted as a request.
        """
        tally = self.tallies[slot]
        if not responded:
            tally.requests += 1
        tally.failures += 1
        base = self.bases[slot]
        slots = self.slots
        now_ms = int(self.clock() * 1000)
        self._mark_offline(base, int(offline_until * 1000), now_ms)
        text = reason.encode("utf-8", "replace")[:ERROR_BYTES]
        start = (base + ERROR_TEXT) * 8
        slots[base + ERROR_SEQ] += 1
        self.bytes[start:start + len(text)] = text
        slots[base + ERROR_LEN] = len(text)
        slots[base + ERROR_AT_MS] = now_ms
        slots[base + ERROR_SEQ] += 1

    def offline(self, slot: int, offline_until: float) -> None:
        """The upstream's passive offline time (monotonic; 0: online) changed: published
        at once, as with a failure."""
        self._mark_offline(self.bases[slot], int(offline_until * 1000),
                           int(self.clock() * 1000))

    def _mark_offline(self, base: int, until_ms: int, now_ms: int) -> None:
        """Publish the offline time ``until_ms``, noting when the cell's upstream went
        offline or came back (an offline time that ran out ended at its end)."""
        slots = self.slots
        previous = slots[base + OFFLINE_UNTIL_MS]
        if previous > now_ms:
            if until_ms <= now_ms:
                slots[base + ONLINE_SINCE_MS] = now_ms
        else:
            if previous > slots[base + ONLINE_SINCE_MS]:
                slots[base + ONLINE_SINCE_MS] = previous
            if until_ms > now_ms:
                slots[base + OFFLINE_SINCE_MS] = now_ms
        slots[base + OFFLINE_UNTIL_MS] = until_ms

    # -- publishing: the worker's own row ----------------------------------------------------
    def publish(self) -> None:
        """Add this worker's tallies to its row, and to the current second's bucket."""
        if not self.publishing:
            return
        slots = self.slots
        now = self.clock()
        second = int(now)
        window = window_of(now)
        # The worker's traffic in this publication: the ring buckets' counts.
        traffic = [0] * (TICK - 1)
        for base, tally in zip(self.bases, self.tallies):
            slots[base + ACTIVE] = tally.active
            slots[base + WEIGHT_PERMILLE] = int(tally.weight_share * 1000)
            requests, failures = tally.requests, tally.failures
            responses = len(tally.latencies)
            if tally.bytes_in or tally.bytes_out:
                slots[base + BYTES_IN] += tally.bytes_in
                slots[base + BYTES_OUT] += tally.bytes_out
                tally.bytes_in = tally.bytes_out = 0
            if not (requests or failures or responses):
                continue
            tally.requests = tally.failures = 0
            errors = latency_us = 0
            if responses:
                latency, buckets, classes = tally.answers()
                requests += responses
                latency_us = int(latency * 1e6)
                slots[base + LATENCY_US] += latency_us
                for index, count in enumerate(buckets):
                    if count:
                        slots[base + BUCKETS + index] += count
                tick(slots, base + RECENT + WINDOW * (window % (WINDOWS + 1)), window, buckets)
                errors = classes[-1]
                for index, count in enumerate(classes):
                    if count:
                        slots[base + CLASSES + index] += count
            slots[base + REQUESTS] += requests
            slots[base + RESPONSES] += responses
            slots[base + FAILURES] += failures
            counts = (requests, failures, errors, responses, latency_us)
            tick(slots, base + RING + TICK * (second % RING_SIZE), second, counts)
            traffic = [total + count for total, count in zip(traffic, counts)]
        if any(traffic):
            interval = int(now // INTERVAL_SECONDS)
            tick(slots, self.row + self.traffic_base + TICK * (interval % (INTERVALS + 1)),
                 interval, traffic)
        base = self.row + self.entry_base
        for tally in self.entry_tallies:
            slots[base + WAITING] = tally.waiting
            slots[base + PANIC] = 1 if tally.panic else 0
            slots[base + QUEUE_FULL] += tally.queue_full
            slots[base + QUEUE_TIMEOUTS] += tally.queue_timeouts
            slots[base + RETRIES] += tally.retries
            slots[base + RETRIES_DENIED] += tally.retries_denied
            tally.queue_full = tally.queue_timeouts = tally.retries = 0
            tally.retries_denied = 0
            base += ENTRY_CELL

    # -- reading: every row ---------------------------------------------------------------
    def snapshot(self) -> list[UpstreamSnapshot]:
        """Every upstream's figures, in slot order, summed over the workers."""
        now = self.clock()
        now_ms = int(now * 1000)
        second = int(now)
        window = window_of(now)
        slots = self.shared.slots
        started_ms = int(self.started * 1000)
        result = []
        for slot, (entry, name, backup) in enumerate(self.labels):
            sums = [0] * CLASSES                  # the counters, by their slot
            offline_workers = 0
            offline_until = error_at = offline_since = 0
            online_since = started_ms
            share = 1000
            error = ""
            buckets = [0] * (len(LATENCY_BUCKETS) + 1)
            recent = [0] * (len(LATENCY_BUCKETS) + 1)
            classes = [0] * STATUS_CLASSES
            history = [[0] * HISTORY_SECONDS for _ in range(1, TICK)]
            for worker in range(self.workers):
                base = worker * self.stride + slot * CELL
                # One copy of the cell: reading a list is much cheaper than the mapping.
                cell = slots[base:base + CELL].tolist()
                sums = [total + count for total, count in zip(sums, cell)]
                share = min(share, cell[WEIGHT_PERMILLE])
                buckets = [total + count for total, count in zip(buckets, cell[BUCKETS:RING])]
                classes = [total + count
                           for total, count in zip(classes, cell[CLASSES:ERROR_TEXT])]
                until = cell[OFFLINE_UNTIL_MS]
                if until > now_ms:
                    offline_workers += 1
                    offline_until = max(offline_until, until)
                    offline_since = max(offline_since, cell[OFFLINE_SINCE_MS])
                else:
                    online_since = max(online_since, until, cell[ONLINE_SINCE_MS])
                at, text = self._error(base)
                if at > error_at:
                    error_at, error = at, text
                add_ring(cell[RING:], second, history)
                add_recent(cell[RECENT:], window, recent)
            requests, failures, errors, responses, latency_us = history
            result.append(UpstreamSnapshot(
                entry=entry, name=name, backup=backup, workers=self.workers,
                requests=sums[REQUESTS], responses=sums[RESPONSES],
                failures=sums[FAILURES], active=sums[ACTIVE],
                latency_sum=sums[LATENCY_US] / 1e6, latency_counts=cumulative(buckets),
                recent_latency_counts=cumulative(recent),
                offline_workers=offline_workers,
                offline_for=max(0.0, (offline_until - now_ms) / 1000),
                last_error=error,
                last_error_age=(now_ms - error_at) / 1000 if error_at else None,
                requests_per_second=requests, failures_per_second=failures,
                status_classes=classes, bytes_in=sums[BYTES_IN], bytes_out=sums[BYTES_OUT],
                errors_per_second=errors, responses_per_second=responses,
                latency_per_second=[micros / 1e6 for micros in latency_us],
                offline_age=max(0.0, (now_ms - offline_since) / 1000),
                online_age=max(0.0, (now_ms - online_since) / 1000),
                weight_share=share / 1000,
            ))
        return result

    def traffic(self) -> Traffic:
        """Every upstream's traffic in the last completed intervals of
        ``INTERVAL_SECONDS``, summed over the workers."""
        slots = self.shared.slots
        history = [[0] * INTERVALS for _ in range(1, TICK)]
        for worker in range(self.workers):
            base = worker * self.stride + self.traffic_base
            add_ring(slots[base:base + TRAFFIC_CELL].tolist(),
                      int(self.clock() // INTERVAL_SECONDS), history)
        requests, failures, errors, responses, latency_us = history
        return Traffic(INTERVAL_SECONDS, requests, failures, errors, responses,
                       [micros / 1e6 for micros in latency_us])

    def entry_snapshot(self) -> list[EntrySnapshot]:
        """Every entry's queue and retry figures, in entry order, summed over the workers."""
        slots = self.shared.slots
        result = []
        for number, label in enumerate(self.entries):
            sums = [0] * ENTRY_CELL
            for worker in range(self.workers):
                base = worker * self.stride + self.entry_base + number * ENTRY_CELL
                for index in range(ENTRY_CELL):
                    sums[index] += slots[base + index]
            result.append(EntrySnapshot(
                label, waiting=sums[WAITING], queue_full=sums[QUEUE_FULL],
                queue_timeouts=sums[QUEUE_TIMEOUTS], retries=sums[RETRIES],
                retries_denied=sums[RETRIES_DENIED], panic_workers=sums[PANIC]))
        return result

    def _error(self, base: int) -> tuple[int, str]:
        """(monotonic ms, text) of the cell's last error; (0, "") if none or mid-write."""
        slots = self.shared.slots
        for _ in range(1000):
            sequence = slots[base + ERROR_SEQ]
            if sequence & 1:
                continue
            at = slots[base + ERROR_AT_MS]
            length = slots[base + ERROR_LEN]
            start = (base + ERROR_TEXT) * 8
            text = bytes(self.bytes[start:start + length])
            if slots[base + ERROR_SEQ] == sequence:
                return at, text.decode("utf-8", "replace")
        return 0, ""

