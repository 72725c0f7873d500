"""The response-time histogram: its bounds, the bucket a response counts in, and the
quantiles read back from the cumulative counts."""

from __future__ import annotations

import random

import pytest

from monkey_py_plugins.proxy_reverse.latency import (
    EXPORTED_BUCKETS,
    LATENCY_BUCKETS,
    cumulative,
    exported,
    quantile,
)
from monkey_py_plugins.proxy_reverse.stats import Tally


def counted(samples: list[float]) -> list[int]:
    """A worker's bucket counts of responses that took ``samples`` seconds."""
    tally = Tally()
    for sample in samples:
        tally.responded(sample, 200)
    return tally.answers()[1]


def cumulative_of(samples: list[float]) -> list[int]:
    """The counts the statistics show for ``samples``: cumulative, then the total."""
    return cumulative(counted(samples))


def bucket_of(seconds: float) -> int:
    """The index of the one bucket that counted a response of ``seconds``."""
    (index,) = [index for index, count in enumerate(counted([seconds])) if count]
    return index


def test_ten_bounds_a_decade_from_a_tenth_of_a_millisecond_to_80_seconds():
    assert LATENCY_BUCKETS[0] == 0.0001 and LATENCY_BUCKETS[-1] == 80.0
    assert len(LATENCY_BUCKETS) == 60
    assert LATENCY_BUCKETS[10:20] == (0.001, 0.0012, 0.0015, 0.002, 0.0025, 0.003, 0.004,
                                      0.005, 0.006, 0.008)
    ratios = [upper / lower for lower, upper in zip(LATENCY_BUCKETS, LATENCY_BUCKETS[1:])]
    assert max(ratios) <= 4 / 3 + 1e-9 and min(ratios) > 1


def test_the_exported_bounds_are_bounds_of_the_histogram():
    assert set(EXPORTED_BUCKETS) <= set(LATENCY_BUCKETS)
    assert list(EXPORTED_BUCKETS) == sorted(EXPORTED_BUCKETS)


@pytest.mark.parametrize("seconds, bound", [
    (0.0, 0.0001), (0.0001, 0.0001), (0.00011, 0.00012), (0.03, 0.03), (0.0301, 0.04),
    (80.0, 80.0),
])
def test_a_response_counts_in_the_first_bucket_whose_bound_it_does_not_exceed(seconds, bound):
    assert LATENCY_BUCKETS[bucket_of(seconds)] == bound


def test_a_response_above_the_last_bound_counts_in_the_infinite_bucket():
    assert bucket_of(80.01) == len(LATENCY_BUCKETS)


def test_no_response_has_no_quantile():
    assert quantile(cumulative_of([]), 0.5) is None


def test_a_quantile_is_linear_within_its_bucket():
    # 90 responses in (0.8 ms, 1 ms], 10 in (150 ms, 200 ms].
    counts = cumulative_of([0.001] * 90 + [0.2] * 10)
    assert quantile(counts, 0.5) == pytest.approx(0.0008 + 0.0002 * 50 / 90)
    assert quantile(counts, 0.9) == pytest.approx(0.001)
    assert quantile(counts, 0.99) == pytest.approx(0.15 + 0.05 * 9 / 10)
    assert quantile(counts, 1.0) == pytest.approx(0.2)


def test_the_first_bucket_starts_at_zero():
    assert quantile(cumulative_of([0.00005] * 4), 0.5) == pytest.approx(0.00005)


def test_a_quantile_in_the_infinite_bucket_is_the_highest_bound():
    assert quantile(cumulative_of([0.01, 300.0]), 0.99) == 80.0


@pytest.mark.parametrize("q", [0, -0.5, 1.5])
def test_a_quantile_outside_0_to_1_is_refused(q):
    with pytest.raises(ValueError):
        quantile(cumulative_of([0.01]), q)


@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_a_quantile_lies_in_the_bucket_of_the_exact_one_so_within_a_third(q):
    draw = random.Random(9)
    for _ in range(20):
        samples = sorted(draw.lognormvariate(-4, 1.5) for _ in range(1000))
        exact = samples[int(q * len(samples)) - 1]
        estimate = quantile(cumulative_of(samples), q)
        index = bucket_of(exact)
        lower = LATENCY_BUCKETS[index - 1] if index else 0.0
        assert lower <= estimate <= LATENCY_BUCKETS[index]
        assert abs(estimate - exact) <= exact / 3


def test_the_exported_counts_are_those_at_their_bounds():
    samples = [0.0009, 0.001, 0.003, 0.02, 0.7, 12.0, 100.0]
    counts = dict(exported(cumulative_of(samples)))
    assert list(counts) == [f"{bound:g}" for bound in EXPORTED_BUCKETS] + ["+Inf"]
    for bound in EXPORTED_BUCKETS:
        assert counts[f"{bound:g}"] == sum(sample <= bound for sample in samples)
    assert counts["+Inf"] == len(samples)
