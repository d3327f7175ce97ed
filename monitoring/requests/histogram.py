"""Mergeable latency histograms with log-scaled buckets.

A value v (milliseconds) falls in bucket i = ceil(log(v) / log(GAMMA)) and is read back as
2·GAMMA^i / (GAMMA + 1), which is within (GAMMA - 1) / (GAMMA + 1) ≈ 0.99 % of every value in
the bucket. Histograms from any number of processes merge by adding counts per bucket, so
percentiles over many processes and hosts are as exact as over one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

GAMMA = 1.02
RELATIVE_ERROR = (GAMMA - 1) / (GAMMA + 1)
_LOG_GAMMA = math.log(GAMMA)
MIN_MS = 0.001  # values below are counted in the lowest bucket


def bucket_of(ms: float) -> int:
    return math.ceil(math.log(ms if ms > MIN_MS else MIN_MS) / _LOG_GAMMA)


def bucket_value(index: int) -> float:
    return 2 * GAMMA**index / (GAMMA + 1)


def quantiles(histogram: Mapping[int, int], qs: Iterable[float]) -> dict[float, float | None]:
    """Nearest-rank quantiles (0 < q ≤ 1) of a bucketed histogram; None when it is empty."""
    wanted = sorted(qs)
    n = sum(histogram.values())
    if n == 0:
        return dict.fromkeys(wanted)
    results: dict[float, float | None] = {}
    ordered = sorted(histogram.items())
    cumulative, position = 0, 0
    for q in wanted:
        rank = max(1, math.ceil(q * n))
        while cumulative + ordered[position][1] < rank:
            cumulative += ordered[position][1]
            position += 1
        results[q] = bucket_value(ordered[position][0])
    return results
