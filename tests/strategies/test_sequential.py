"""The mixture SPRT: valid under continuous monitoring, and powerful enough for a medium effect."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.sequential import SequentialTest, run

Draw = Callable[[random.Random], float]

DISTRIBUTIONS: dict[str, Draw] = {
    "normal": lambda rng: rng.gauss(10.0, 3.0),
    "exponential (a time to detect)": lambda rng: rng.expovariate(1 / 8.0),
    "bernoulli (a healing outcome)": lambda rng: 1.0 if rng.random() < 0.3 else 0.0,
    "counts (switches per hour)": lambda rng: float(sum(rng.random() < 0.2 for _ in range(10))),
}


def _experiment(draw: Draw, *, seed: int, per_arm: int, effect: float = 0.0) -> SequentialTest:
    """Outcomes alternate between the arms; the test is looked at after every one (it always is)."""
    rng = random.Random(seed)
    test = SequentialTest()
    for _ in range(per_arm):
        test.add(treatment=False, value=draw(rng))
        test.add(treatment=True, value=draw(rng) + effect)
    return test


@settings(max_examples=4, deadline=None)
@given(name=st.sampled_from(sorted(DISTRIBUTIONS)), base_seed=st.integers(0, 10**6))
def test_aa_experiments_are_declared_significant_at_most_five_percent_of_the_time(name: str, base_seed: int) -> None:
    # given: 300 A/A experiments of 200 outcomes per arm, checked after every outcome
    runs = 300
    # when
    false_positives = sum(
        _experiment(DISTRIBUTIONS[name], seed=base_seed + i, per_arm=200).result().significant for i in range(runs)
    )
    # then
    assert false_positives / runs <= 0.05


def test_a_half_standard_deviation_difference_is_found_within_150_outcomes_per_arm_in_80_percent_of_runs() -> None:
    # given: an effect of 0.5 sd (sd 3, effect 1.5) on a normal outcome
    runs = 200
    # when
    found = [_experiment(DISTRIBUTIONS["normal"], seed=i, per_arm=150, effect=1.5).result() for i in range(runs)]
    # then
    power = sum(r.significant for r in found) / runs
    assert power >= 0.8
    assert all(r.ci_low is not None and r.ci_low > 0 for r in found if r.significant)


def test_the_p_value_never_rises_and_the_interval_covers_the_observed_effect() -> None:
    rng = random.Random(7)
    test = SequentialTest()
    seen = []
    for _ in range(100):
        test.add(treatment=rng.random() < 0.5, value=rng.gauss(0, 1))
        seen.append(test.p_value)
    assert seen == sorted(seen, reverse=True)
    result = test.result()
    assert result.ci_low is not None and result.ci_high is not None
    assert result.ci_low <= result.ci_high


def test_nothing_is_decided_before_each_arm_has_its_minimum_samples() -> None:
    test = run([(True, 100.0)] * 19 + [(False, 0.0)] * 19)
    assert test.p_value == 1.0 and test.result().ci_low is None


def test_a_non_finite_outcome_is_refused() -> None:
    with pytest.raises(ValueError):
        SequentialTest().add(treatment=True, value=float("nan"))
