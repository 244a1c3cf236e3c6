"""A latency sketch: counts in fixed log-spaced buckets, mergeable by adding, read as percentiles.

Pure. Process-local histograms (prometheus_client) cannot be split by
tenant without a label per tenant, which is unbounded cardinality; a sketch
of fixed buckets kept per tenant in Redis can (observability/ingest_capacity.py).

Buckets grow by a factor of 2**(1/4) from 0.25 ms to about 65 s (73 of
them, the last open-ended), so a percentile read from a bucket's geometric
middle is within 10% of the truth, whatever the scale.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping

FIRST_BOUND_S = 0.00025
GROWTH = 2.0**0.25
BUCKETS = 73
# Upper bounds of buckets 0..BUCKETS-2; the last bucket takes everything above.
BOUNDS: tuple[float, ...] = tuple(FIRST_BOUND_S * GROWTH**i for i in range(BUCKETS - 1))


def bucket_of(seconds: float) -> int:
    """The bucket a duration falls in (bound inclusive); negative or NaN counts as 0."""
    if not seconds > 0:
        return 0
    return bisect.bisect_left(BOUNDS, seconds)


def bucket_middle(index: int) -> float:
    """A representative duration for a bucket: the geometric middle of its bounds."""
    if index <= 0:
        return FIRST_BOUND_S / math.sqrt(GROWTH)
    if index >= BUCKETS - 1:
        return BOUNDS[-1] * math.sqrt(GROWTH)
    return math.sqrt(BOUNDS[index - 1] * BOUNDS[index])


def merge(sketches: Iterable[Mapping[int, int]]) -> dict[int, int]:
    total: dict[int, int] = {}
    for sketch in sketches:
        for index, count in sketch.items():
            if count > 0:
                total[index] = total.get(index, 0) + count
    return total


def quantile(sketch: Mapping[int, int], q: float) -> float | None:
    """The q-quantile (0 < q <= 1) of the durations counted, None when nothing was counted.

    Nearest rank: the bucket holding the ceil(q * n)-th smallest duration, read at its middle.
    """
    if not 0 < q <= 1:
        raise ValueError("0 < q <= 1 is required")
    n = sum(count for count in sketch.values() if count > 0)
    if n == 0:
        return None
    rank = max(1, math.ceil(q * n))
    seen = 0
    for index in sorted(sketch):
        count = sketch[index]
        if count <= 0:
            continue
        seen += count
        if seen >= rank:
            return bucket_middle(index)
    return bucket_middle(max(sketch))  # unreachable: seen reaches n


def percentiles_ms(sketch: Mapping[int, int]) -> dict[str, float | None]:
    """p50, p95 and p99 in milliseconds (rounded to 0.01 ms), None when empty."""
    out: dict[str, float | None] = {}
    for name, q in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
        value = quantile(sketch, q)
        out[name] = None if value is None else round(value * 1000, 2)
    return out
