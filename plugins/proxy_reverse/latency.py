"""The response-time histogram: its fixed bucket bounds, and quantiles read from its counts.

The bounds run ten to a decade (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 and 8 times a power of
ten) from 0.1 ms to 80 s, then +Inf: a bound is at most a third above the one before, so
a quantile read from the counts, linear within its bucket as Prometheus's
``histogram_quantile`` reads one, is off by less than a third of its value. A worker
notes each response's time and sorts them into the buckets when it publishes its
figures (``stats.Tally``).

JSON and Prometheus show the counts at the coarser ``EXPORTED_BUCKETS`` (each one of the
bounds, so its cumulative count is exact): enough for ``histogram_quantile`` without
sixty series per server.

The counts since the start feed the exported histogram. The quantiles shown are those of
the last minute: the counts also go into a ring of windows of ``WINDOW_SECONDS`` (the
window still counting and the ``WINDOWS`` before it, so 60 to 70 seconds), each its
window number then its counts, claimed as ``history.tick`` claims a bucket.
"""

from __future__ import annotations

from bisect import bisect_left

STEPS = ("1", "1.2", "1.5", "2", "2.5", "3", "4", "5", "6", "8")
# Upper bounds in seconds; a response of exactly a bound counts in that bound's bucket.
LATENCY_BUCKETS = tuple(float(f"{step}e{exponent}") for exponent in range(-4, 2)
                        for step in STEPS)
EXPORTED_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    5.0, 10.0)
_EXPORTED_INDEX = tuple(LATENCY_BUCKETS.index(bound) for bound in EXPORTED_BUCKETS)
WINDOW_SECONDS = 10
WINDOWS = 6
# The int64 slots of one window: its number, then a count per bucket (+Inf included).
WINDOW = 1 + len(LATENCY_BUCKETS) + 1
WINDOW_RING = WINDOW * (WINDOWS + 1)


def quantile(cumulative: list[int], q: float) -> float | None:
    """The ``q`` quantile (0 < q <= 1) in seconds of the histogram whose cumulative
    counts, one per bound then the total, are ``cumulative``; None when it is empty.

    Linear within the bucket it falls in (the first bucket starts at 0); in the +Inf
    bucket, the highest finite bound.
    """
    if not 0 < q <= 1:
        raise ValueError(f"a quantile is between 0 (excluded) and 1, not {q}")
    total = cumulative[-1]
    if not total:
        return None
    rank = q * total
    index = bisect_left(cumulative, rank)
    if index >= len(LATENCY_BUCKETS):
        return LATENCY_BUCKETS[-1]
    below = cumulative[index - 1] if index else 0
    lower = LATENCY_BUCKETS[index - 1] if index else 0.0
    upper = LATENCY_BUCKETS[index]
    return lower + (upper - lower) * (rank - below) / (cumulative[index] - below)


def exported(cumulative: list[int]) -> list[tuple[str, int]]:
    """(bound as a label, cumulative count) at ``EXPORTED_BUCKETS`` and +Inf."""
    counts = [(f"{bound:g}", cumulative[index])
              for bound, index in zip(EXPORTED_BUCKETS, _EXPORTED_INDEX)]
    counts.append(("+Inf", cumulative[-1]))
    return counts


def window_of(now: float) -> int:
    """The number of the window that ``now`` (monotonic seconds) falls in."""
    return int(now // WINDOW_SECONDS)


def add_recent(ring: list[int], window: int, counts: list[int]) -> None:
    """Add to ``counts`` (one per bucket) those of a window ring (its slots from
    ``ring[0]``) that fall in the last minute: window ``window`` and the ``WINDOWS``
    before it. Stale windows are left out."""
    for start in range(0, WINDOW_RING, WINDOW):
        if 0 <= window - ring[start] <= WINDOWS:
            for index, count in enumerate(ring[start + 1:start + WINDOW]):
                counts[index] += count


def cumulative(counts: list[int]) -> list[int]:
    """Bucket counts made cumulative: one count per bound, then the total."""
    result = []
    total = 0
    for count in counts:
        total += count
        result.append(total)
    return result
