"""Assignment of sources to arms: stable, balanced within strata, independent of order."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.assignment import Arm, Unit, arm_of, assign, stratum_of

units_lists = st.lists(
    st.builds(Unit, id=st.integers(1, 10**12), stratum=st.sampled_from(["rest/event/low", "http/event/high", "x"])),
    max_size=300,
    unique_by=lambda u: u.id,
)


@given(units=units_lists, salt=st.text(max_size=12), seed=st.integers(0, 2**32))
def test_assignment_does_not_depend_on_the_order_the_sources_are_listed_in(
    units: list[Unit], salt: str, seed: int
) -> None:
    # given
    shuffled = list(units)
    random.Random(seed).shuffle(shuffled)
    # when / then
    assert assign(units, salt=salt) == assign(shuffled, salt=salt)


@given(units=units_lists, salt=st.text(max_size=12), share=st.floats(0.05, 0.95))
def test_each_stratum_is_split_within_one_source_of_the_share(units: list[Unit], salt: str, share: float) -> None:
    # when
    placed = assign(units, salt=salt, share=share)
    # then
    sizes = Counter(u.stratum for u in units)
    treated = Counter(u.stratum for u in units if placed[u.id] is Arm.TREATMENT)
    for stratum, size in sizes.items():
        assert abs(treated[stratum] - share * size) <= 1


@given(ids=st.lists(st.integers(1, 10**9), min_size=1, max_size=200, unique=True), salt=st.text(max_size=8))
def test_coverage_one_places_every_source_and_a_smaller_one_only_those_it_draws(ids: list[int], salt: str) -> None:
    units = [Unit(i) for i in ids]
    assert set(assign(units, salt=salt, coverage=1.0)) == set(ids)
    partial = assign(units, salt=salt, coverage=0.3)
    assert all(arm_of(salt, i, coverage=0.3) is not None for i in partial)


@settings(max_examples=20)
@given(salt=st.text(max_size=8))
def test_a_late_source_is_placed_alone_and_about_half_go_to_each_arm(salt: str) -> None:
    arms = Counter(arm_of(salt, i) for i in range(2000))
    assert 850 <= arms[Arm.TREATMENT] <= 1150


def test_two_experiments_split_the_same_sources_independently() -> None:
    units = [Unit(i) for i in range(400)]
    a, b = assign(units, salt="exp-1"), assign(units, salt="exp-2")
    agree = sum(a[i] == b[i] for i in range(400))
    assert 150 <= agree <= 250  # independent halves agree about half the time


def test_the_default_stratum_names_connector_mode_and_traffic_class() -> None:
    assert stratum_of(connector="rest", mode="event", rate_per_s=None) == "rest/event/quiet"
    assert stratum_of(connector="http", mode="polling", rate_per_s=25.0) == "http/polling/high"
