"""Rings of counters in shared memory: the traffic of each of the last seconds (or
intervals), kept in one bucket per second (or interval) plus the one still counting.

Each bucket is ``TICK`` int64 slots: the second (or interval) it counts, then the
requests, failures, 5xx responses, responses, and the microseconds those responses took.
A writer claims a stale bucket by zeroing its counts before it stamps it, so a reader
that sees counts under an old stamp leaves them out; a bucket left from an earlier turn
of the ring is recognised by its stamp and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

SECOND, TICK_REQUESTS, TICK_FAILURES, TICK_5XX, TICK_RESPONSES, TICK_LATENCY_US = range(6)
TICK = 6
# The worker's traffic: this many completed intervals of INTERVAL_SECONDS (ten minutes).
INTERVAL_SECONDS = 10
INTERVALS = 60


@dataclass
class Traffic:
    """Traffic in each of the last completed intervals of ``interval`` seconds (oldest
    first): requests, failures, 5xx responses, responses, and the seconds those
    responses took."""

    interval: int
    requests: list[int]
    failures: list[int]
    errors: list[int]
    responses: list[int]
    latency: list[float]

    @property
    def seconds(self) -> int:
        """The time it covers."""
        return self.interval * len(self.requests)

    @property
    def mean_latency(self) -> list[float | None]:
        """The mean seconds to the response head in each interval (None: no response)."""
        return [spent / count if count else None
                for spent, count in zip(self.latency, self.responses)]

    @classmethod
    def idle(cls) -> Traffic:
        """Ten minutes without a request."""
        return cls(INTERVAL_SECONDS, *([0] * INTERVALS for _ in range(4)),
                   [0.0] * INTERVALS)


def tick(slots, bucket: int, stamp: int, counts) -> None:
    """Add ``counts`` into the ring ``bucket`` (a slot index of ``slots``) of ``stamp``
    (a second or an interval), claiming the bucket if it is stale. A bucket is its stamp
    then ``len(counts)`` counts (the latency histogram's windows use it too)."""
    if slots[bucket + SECOND] != stamp:
        # Counts first: a reader seeing them under the old stamp ignores them.
        for index in range(1, len(counts) + 1):
            slots[bucket + index] = 0
        slots[bucket + SECOND] = stamp
    for index, count in enumerate(counts, 1):
        slots[bucket + index] += count


def add_ring(ring: list[int], current: int, history: list[list[int]]) -> None:
    """Add the counts of a ring (its buckets from ``ring[0]`` on, one more than the
    history is long) to ``history``: one list per counted series, oldest first, ending
    with the second (or interval) before ``current``. Stale buckets are left out."""
    length = len(history[0])
    requests, failures, errors, responses, latency_us = history
    for bucket, stamp in enumerate(ring[SECOND:TICK * (length + 1):TICK]):
        age = current - stamp
        if 0 < age <= length:
            index = length - age
            start = TICK * bucket
            requests[index] += ring[start + TICK_REQUESTS]
            failures[index] += ring[start + TICK_FAILURES]
            errors[index] += ring[start + TICK_5XX]
            responses[index] += ring[start + TICK_RESPONSES]
            latency_us[index] += ring[start + TICK_LATENCY_US]
