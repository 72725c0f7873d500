"""Upstream statistics shared by all workers.

A worker counts in plain local objects (a :class:`Tally` per upstream: a few integer
additions per request, no shared memory touched) and publishes them into its own row of
int64 counters in shared memory every ``PUBLISH_SECONDS`` (one writer per slot, so no
lock); a reader sums the rows. Created in the master before the fork, so the status page
of any worker shows the figures of all of them, at most ``PUBLISH_SECONDS`` old (its
own worker's publish first, so they are current). Failures are rare and publish their
error text and offline time at once.

A row holds one cell per upstream, then one per entry. An upstream's cell has the
counters, the share of its weight the worker gives it (slow start), the latency
histogram, the last error's text (written under a sequence number so a reader never
takes half of it) and a ring of per-second counters for the last minute: each ring
bucket carries the second it counts, so a bucket left from an earlier minute is
recognised and ignored. An entry's cell has its queue and retry figures and whether the
worker is in panic mode.
Times are read from the monotonic clock, which every process of the machine shares; a
publication counts into the ring bucket of the second it happens in.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from dataclasses import dataclass
from typing import Callable

from monkey_py.shared import SharedMemory

# How often a worker's local counts reach the shared memory.
PUBLISH_SECONDS = 0.25
# Upper bounds (seconds) of the buckets of the response-time histogram; +Inf follows.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# The per-second history covers this many completed seconds.
HISTORY_SECONDS = 60
ERROR_BYTES = 120

# The int64 slots of one cell (one upstream in one worker's row).
REQUESTS, RESPONSES, FAILURES, ACTIVE, LATENCY_US, OFFLINE_UNTIL_MS, ERROR_AT_MS, \
    ERROR_SEQ, ERROR_LEN, WEIGHT_PERMILLE = range(10)
ERROR_TEXT = 10
BUCKETS = ERROR_TEXT + ERROR_BYTES // 8
RING = BUCKETS + len(LATENCY_BUCKETS) + 1
# The ring keeps the current, still counting, second besides the completed ones.
RING_SIZE = HISTORY_SECONDS + 1
CELL = RING + 3 * RING_SIZE          # each ring bucket: second, requests, failures
# The slots of an entry's cell: gauges (waiting, panic) and counters.
WAITING, QUEUE_FULL, QUEUE_TIMEOUTS, RETRIES, RETRIES_DENIED, PANIC = range(6)
ENTRY_CELL = 6


@dataclass
class UpstreamSnapshot:
    """One upstream's figures summed over the workers.

    ``requests`` counts the requests sent to it that got a response or failed before
    one; ``failures`` counts every failed attempt, also those that broke off in the
    middle of a response. ``latency_counts`` is cumulative, one count per bound of
    ``LATENCY_BUCKETS`` and then the total; the per-second lists run oldest first and
    end with the last completed second.
    """

    entry: str
    name: str
    backup: bool
    workers: int
    requests: int
    responses: int
    failures: int
    active: int
    latency_sum: float
    latency_counts: list[int]
    offline_workers: int
    offline_for: float
    last_error: str
    last_error_age: float | None
    requests_per_second: list[int]
    failures_per_second: list[int]
    # The lowest share of its weight any worker gives it: 0 where it is offline, less
    # than 1 during a slow start.
    weight_share: float = 1.0
    # Its configured weight, and its health check's figures (None: no check); the
    # report fills them in.
    weight: int = 1
    check: object = None

    @property
    def state(self) -> str:
        """``down`` (its health check fails), else ``up``, ``offline`` (in every worker)
        or ``partly offline``."""
        if self.check is not None and self.check.state == "down":
            return "down"
        if not self.offline_workers:
            return "up"
        return "offline" if self.offline_workers >= self.workers else "partly offline"

    @property
    def mean_latency(self) -> float | None:
        """Mean seconds from the start of an attempt to the response head."""
        return self.latency_sum / self.responses if self.responses else None


@dataclass
class EntrySnapshot:
    """One entry's queue and retry figures summed over the workers."""

    label: str
    waiting: int
    queue_full: int
    queue_timeouts: int
    retries: int
    retries_denied: int
    panic_workers: int


class Tally:
    """One upstream's counts in this worker since they were last published."""

    __slots__ = ("requests", "responses", "failures", "active", "latency", "buckets",
                 "weight_share")

    def __init__(self) -> None:
        self.requests = self.responses = self.failures = self.active = 0
        self.latency = 0.0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.weight_share = 1.0

    def responded(self, latency: float) -> None:
        """A response head arrived ``latency`` seconds after the attempt started."""
        self.requests += 1
        self.responses += 1
        self.latency += latency
        self.buckets[bisect_left(LATENCY_BUCKETS, latency)] += 1


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
        self.entry_base = len(labels) * CELL
        self.stride = self.entry_base + len(self.entries) * ENTRY_CELL
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
        for slot in range(len(self.labels)):
            base = self.row + slot * CELL
            slots[base + ACTIVE] = 0
            slots[base + OFFLINE_UNTIL_MS] = 0
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

    def responded(self, slot: int, latency: float) -> None:
        """A response head arrived ``latency`` seconds after the attempt started."""
        self.tallies[slot].responded(latency)

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
        slots[base + OFFLINE_UNTIL_MS] = int(offline_until * 1000)
        text = reason.encode("utf-8", "replace")[:ERROR_BYTES]
        start = (base + ERROR_TEXT) * 8
        slots[base + ERROR_SEQ] += 1
        self.bytes[start:start + len(text)] = text
        slots[base + ERROR_LEN] = len(text)
        slots[base + ERROR_AT_MS] = int(self.clock() * 1000)
        slots[base + ERROR_SEQ] += 1

    def offline(self, slot: int, offline_until: float) -> None:
        """The upstream's passive offline time (monotonic; 0: online) changed: published
        at once, as with a failure."""
        self.slots[self.bases[slot] + OFFLINE_UNTIL_MS] = int(offline_until * 1000)

    # -- publishing: the worker's own row ----------------------------------------------------
    def publish(self) -> None:
        """Add this worker's tallies to its row, and to the current second's bucket."""
        if not self.publishing:
            return
        slots = self.slots
        second = int(self.clock())
        for base, tally in zip(self.bases, self.tallies):
            slots[base + ACTIVE] = tally.active
            slots[base + WEIGHT_PERMILLE] = int(tally.weight_share * 1000)
            requests, failures = tally.requests, tally.failures
            if not (requests or failures or tally.responses):
                continue
            slots[base + REQUESTS] += requests
            slots[base + RESPONSES] += tally.responses
            slots[base + FAILURES] += failures
            slots[base + LATENCY_US] += int(tally.latency * 1e6)
            buckets = tally.buckets
            for index, count in enumerate(buckets):
                if count:
                    slots[base + BUCKETS + index] += count
                    buckets[index] = 0
            tally.requests = tally.responses = tally.failures = 0
            tally.latency = 0.0
            self._tick(base, second, requests, failures)
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

    def _tick(self, base: int, second: int, requests: int, failures: int) -> None:
        """Count into the ring bucket of ``second``, claiming it if it is stale."""
        bucket = base + RING + 3 * (second % RING_SIZE)
        slots = self.slots
        if slots[bucket] != second:
            # Counts first: a reader seeing them under the old second ignores them.
            slots[bucket + 1] = 0
            slots[bucket + 2] = 0
            slots[bucket] = second
        slots[bucket + 1] += requests
        slots[bucket + 2] += failures

    # -- reading: every row ---------------------------------------------------------------
    def snapshot(self) -> list[UpstreamSnapshot]:
        """Every upstream's figures, in slot order, summed over the workers."""
        now = self.clock()
        now_ms = int(now * 1000)
        second = int(now)
        slots = self.shared.slots
        result = []
        for slot, (entry, name, backup) in enumerate(self.labels):
            requests = responses = failures = active = latency_us = 0
            offline_workers = 0
            offline_until = error_at = 0
            share = 1000
            error = ""
            buckets = [0] * (len(LATENCY_BUCKETS) + 1)
            per_second = [0] * HISTORY_SECONDS
            failed_per_second = [0] * HISTORY_SECONDS
            for worker in range(self.workers):
                base = worker * self.stride + slot * CELL
                requests += slots[base + REQUESTS]
                responses += slots[base + RESPONSES]
                failures += slots[base + FAILURES]
                active += slots[base + ACTIVE]
                latency_us += slots[base + LATENCY_US]
                share = min(share, slots[base + WEIGHT_PERMILLE])
                for i in range(len(buckets)):
                    buckets[i] += slots[base + BUCKETS + i]
                until = slots[base + OFFLINE_UNTIL_MS]
                if until > now_ms:
                    offline_workers += 1
                    offline_until = max(offline_until, until)
                at, text = self._error(base)
                if at > error_at:
                    error_at, error = at, text
                for i in range(RING_SIZE):
                    bucket = base + RING + 3 * i
                    age = second - slots[bucket]
                    if 1 <= age <= HISTORY_SECONDS:
                        per_second[HISTORY_SECONDS - age] += slots[bucket + 1]
                        failed_per_second[HISTORY_SECONDS - age] += slots[bucket + 2]
            cumulative = []
            total = 0
            for count in buckets:
                total += count
                cumulative.append(total)
            result.append(UpstreamSnapshot(
                entry=entry, name=name, backup=backup, workers=self.workers,
                requests=requests, responses=responses, failures=failures, active=active,
                latency_sum=latency_us / 1e6, latency_counts=cumulative,
                offline_workers=offline_workers,
                offline_for=max(0.0, (offline_until - now_ms) / 1000),
                last_error=error,
                last_error_age=(now_ms - error_at) / 1000 if error_at else None,
                requests_per_second=per_second, failures_per_second=failed_per_second,
                weight_share=share / 1000,
            ))
        return result

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
