"""Weighted fair sharing of a dispatch round between tenants (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from scheduling.fairshare import fair_shares, tier_weight


def test_one_tenants_backlog_does_not_hold_another_tenants_single_poll() -> None:
    shares = fair_shares({"big": 5_000, "small": 1}, {"big": 2.0, "small": 2.0}, 200)
    assert shares == {"big": 199, "small": 1}


def test_busy_tenants_share_by_tier_weight() -> None:
    shares = fair_shares({"free": 1_000, "premium": 1_000}, {"free": 1.0, "premium": 4.0}, 100)
    assert shares == {"free": 20, "premium": 80}


def test_what_a_light_tenant_leaves_goes_to_the_others_by_weight() -> None:
    shares = fair_shares({"a": 5, "b": 1_000, "c": 1_000}, {"a": 4.0, "b": 1.0, "c": 1.0}, 105)
    assert shares == {"a": 5, "b": 50, "c": 50}


def test_with_more_tenants_than_slots_the_longest_waiting_go_first() -> None:
    demands = {f"t{i}": 1 for i in range(10)}
    waiting = {f"t{i}": float(100 - i) for i in range(10)}  # t9 has waited longest
    shares = fair_shares(demands, dict.fromkeys(demands, 1.0), 3, waiting_since=waiting)
    assert {k for k, n in shares.items() if n} == {"t9", "t8", "t7"}


def test_no_capacity_gives_nothing() -> None:
    assert fair_shares({"a": 3}, {"a": 1.0}, 0) == {"a": 0}


def test_tier_weights_default_and_unknown() -> None:
    assert tier_weight("premium") == 4.0
    assert tier_weight("free") == 1.0
    assert tier_weight("platinum") == 1.0  # unknown: the smallest known weight, never zero


@given(
    demands=st.dictionaries(st.integers(0, 30), st.integers(0, 500), max_size=30),
    weights=st.dictionaries(st.integers(0, 30), st.floats(0.1, 10)),
    capacity=st.integers(0, 2_000),
)
def test_shares_are_bounded_work_conserving_and_never_exceed_demand(
    demands: dict[int, int], weights: dict[int, float], capacity: int
) -> None:
    shares = fair_shares(demands, weights, capacity)
    assert set(shares) == set(demands)
    assert all(0 <= shares[k] <= demands[k] for k in demands)
    assert sum(shares.values()) == min(capacity, sum(demands.values()))


@given(
    demands=st.dictionaries(st.integers(0, 30), st.integers(1, 500), min_size=2, max_size=30),
    capacity=st.integers(1, 2_000),
)
def test_equal_weights_split_within_one_unit_among_the_unsatisfied(demands: dict[int, int], capacity: int) -> None:
    shares = fair_shares(demands, dict.fromkeys(demands, 1.0), capacity)
    unsatisfied = [shares[k] for k in demands if shares[k] < demands[k]]
    # Max-min fairness: nobody left wanting got more than one unit above another left wanting,
    # and nobody satisfied got more than someone left wanting got plus one.
    if unsatisfied:
        assert max(unsatisfied) - min(unsatisfied) <= 1
        assert all(shares[k] <= min(unsatisfied) + 1 for k in demands)
