"""The latency sketch (observability/sketch.py): buckets, merging, percentiles, no database."""

from __future__ import annotations

import random

import pytest

from observability.sketch import BOUNDS, bucket_middle, bucket_of, merge, percentiles_ms, quantile


def _sketch(values: list[float]) -> dict[int, int]:
    sketch: dict[int, int] = {}
    for value in values:
        sketch[bucket_of(value)] = sketch.get(bucket_of(value), 0) + 1
    return sketch


def test_percentiles_are_within_ten_percent_of_the_exact_ones_over_six_orders_of_magnitude():
    # given
    rng = random.Random(7)
    values = sorted(rng.lognormvariate(-4.0, 2.0) for _ in range(20_000))  # ~0.1 ms .. 10 s
    sketch = _sketch(values)
    for q in (0.5, 0.9, 0.95, 0.99):
        exact = values[max(0, round(q * len(values)) - 1)]
        # when
        estimate = quantile(sketch, q)
        # then
        assert estimate is not None
        assert abs(estimate - exact) / exact < 0.10, (q, estimate, exact)


def test_merged_sketches_read_like_one_sketch_of_all_the_values():
    first, second = [0.001] * 90, [0.5] * 10
    merged = merge([_sketch(first), _sketch(second)])
    assert merged == _sketch(first + second)
    assert quantile(merged, 0.5) == pytest.approx(0.001, rel=0.1)
    assert quantile(merged, 0.95) == pytest.approx(0.5, rel=0.1)


def test_an_empty_sketch_has_no_percentiles():
    assert quantile({}, 0.5) is None
    assert percentiles_ms({}) == {"p50_ms": None, "p95_ms": None, "p99_ms": None}


def test_durations_outside_the_bounds_land_in_the_first_and_last_buckets():
    assert bucket_of(0.0) == 0 and bucket_of(-1.0) == 0 and bucket_of(float("nan")) == 0
    assert bucket_of(1e6) == len(BOUNDS)
    assert bucket_middle(len(BOUNDS)) > BOUNDS[-1]


def test_a_quantile_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError):
        quantile({1: 1}, 0.0)
