from __future__ import annotations

import math
import random
from collections import Counter

from monitoring.requests.histogram import MIN_MS, RELATIVE_ERROR, bucket_of, bucket_value, quantiles


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def test_every_value_reads_back_within_one_percent():
    rng = random.Random(1)
    for _ in range(10_000):
        v = 10 ** rng.uniform(-2, 5)
        assert abs(bucket_value(bucket_of(v)) - v) / v <= RELATIVE_ERROR + 1e-12
    assert RELATIVE_ERROR < 0.01


def test_percentiles_match_exact_values_on_a_million_skewed_samples():
    rng = random.Random(42)
    # Mostly fast requests, a heavy tail of slow ones: log-normal mixed with a Pareto tail.
    values = [
        rng.lognormvariate(2.5, 0.6) if rng.random() < 0.97 else 50 * rng.paretovariate(1.3) for _ in range(1_000_000)
    ]
    histogram = Counter(bucket_of(v) for v in values)
    estimated = quantiles(histogram, [0.5, 0.95, 0.99])
    for q in (0.5, 0.95, 0.99):
        truth = exact(values, q)
        assert abs(estimated[q] - truth) / truth < 0.02, (q, estimated[q], truth)


def test_histograms_from_two_processes_merge_to_the_whole():
    rng = random.Random(7)
    a = [rng.expovariate(1 / 30) for _ in range(50_000)]
    b = [rng.expovariate(1 / 300) for _ in range(50_000)]
    merged = Counter(bucket_of(v) for v in a) + Counter(bucket_of(v) for v in b)
    whole = Counter(bucket_of(v) for v in a + b)
    assert merged == whole
    p99 = quantiles(merged, [0.99])[0.99]
    assert abs(p99 - exact(a + b, 0.99)) / exact(a + b, 0.99) < 0.02


def test_empty_histogram_has_no_percentiles():
    assert quantiles({}, [0.5]) == {0.5: None}


def test_nearest_rank_picks_the_bucket_that_holds_that_rank():
    two = {bucket_of(10): 1, bucket_of(100): 1}  # one fast request, one slow
    got = quantiles(two, [0.5, 1.0])
    assert got[0.5] == bucket_value(bucket_of(10))  # rank 1 of 2: the fast one
    assert got[1.0] == bucket_value(bucket_of(100))  # rank 2 of 2: the slow one
    assert quantiles({bucket_of(5): 3}, [0.01])[0.01] == bucket_value(bucket_of(5))


def test_zero_and_sub_microsecond_values_fall_in_the_lowest_bucket():
    lowest = bucket_of(MIN_MS)
    assert bucket_of(0.0) == bucket_of(MIN_MS / 10) == lowest
    assert bucket_of(MIN_MS * 1.5) > lowest
