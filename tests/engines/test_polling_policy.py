"""Poll scheduling and the per-host circuit breaker, without a database (engines/polling_policy.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engines.polling_policy import (
    BreakerPolicy,
    BreakerState,
    BreakerStatus,
    PollPolicy,
    PollState,
    after_error,
    after_success,
    breaker_check,
    breaker_record,
    parse_retry_after,
)

T0 = 1_800_000_000.0
POLICY = PollPolicy()  # 1..60s, target 10 changes, x1.5 slower, at most /4 faster
BREAKER = BreakerPolicy()  # 5 failures, 30s cool-down doubling up to 600s, 60s probe timeout


# --- the adaptive interval ----------------------------------------------------------------------


def test_the_first_poll_starts_at_the_minimum_interval() -> None:
    # given
    state = PollState()
    # when
    plan = after_success(state, changes=10, has_more=False, policy=POLICY)
    # then
    assert plan.state.interval_s == POLICY.min_interval_s


def test_an_empty_poll_lengthens_the_interval_by_the_grow_factor() -> None:
    # when
    plan = after_success(PollState(interval_s=10), changes=0, has_more=False, policy=POLICY)
    # then
    assert plan.state.interval_s == 15
    assert plan.delay_s == 15


def test_a_poll_on_target_keeps_the_interval() -> None:
    # when
    plan = after_success(PollState(interval_s=10), changes=10, has_more=False, policy=POLICY)
    # then
    assert plan.state.interval_s == 10


def test_more_changes_per_poll_shorten_the_interval_at_most_by_max_speedup() -> None:
    # when
    some = after_success(PollState(interval_s=20), changes=20, has_more=False, policy=POLICY)
    many = after_success(PollState(interval_s=20), changes=1_000, has_more=False, policy=POLICY)
    # then
    assert some.state.interval_s == 10
    assert many.state.interval_s == 5


def test_a_poll_that_left_pages_behind_polls_again_at_the_minimum() -> None:
    # when
    plan = after_success(PollState(interval_s=40), changes=500, has_more=True, policy=POLICY)
    # then
    assert plan.delay_s == POLICY.min_interval_s
    assert plan.reason.startswith("more pages waiting")


def test_the_interval_never_leaves_its_bounds() -> None:
    # when
    slowest = after_success(PollState(interval_s=59), changes=0, has_more=False, policy=POLICY)
    fastest = after_success(PollState(interval_s=1.2), changes=1_000, has_more=False, policy=POLICY)
    # then
    assert slowest.state.interval_s == 60
    assert fastest.state.interval_s == 1


def test_a_changed_config_applies_at_the_next_poll() -> None:
    # given: an interval learned under a looser policy
    state = PollState(interval_s=300)
    # when
    plan = after_success(state, changes=10, has_more=False, policy=PollPolicy.from_config({"max_interval_s": 30}))
    # then
    assert plan.state.interval_s == 30


def test_retry_after_delays_the_next_poll_without_changing_the_interval() -> None:
    # when
    plan = after_success(PollState(interval_s=10), changes=10, has_more=False, policy=POLICY, retry_after_s=120)
    # then
    assert plan.delay_s == 120
    assert plan.state.interval_s == 10
    assert "upstream asked to retry after" in plan.reason


def test_a_retry_after_of_days_is_capped() -> None:
    # when
    plan = after_success(PollState(interval_s=10), changes=10, has_more=False, policy=POLICY, retry_after_s=86_400)
    # then
    assert plan.delay_s == POLICY.retry_after_cap_s


# --- errors -------------------------------------------------------------------------------------


def test_error_backoff_doubles_its_cap_and_jitters_over_all_of_it() -> None:
    # given
    state = PollState(interval_s=10)
    # when
    first = after_error(state, policy=POLICY, rand=lambda: 1.0)
    second = after_error(first.state, policy=POLICY, rand=lambda: 1.0)
    third = after_error(second.state, policy=POLICY, rand=lambda: 0.5)
    # then: caps 1, 2, 4s; the third drew half of its cap
    assert (first.delay_s, second.delay_s, third.delay_s) == (1, 2, 2)
    assert third.state == PollState(interval_s=10, errors=3)


def test_error_backoff_is_capped_at_backoff_max() -> None:
    # when
    plan = after_error(PollState(errors=40), policy=POLICY, rand=lambda: 1.0)
    # then
    assert plan.delay_s == POLICY.backoff_max_s


def test_error_backoff_never_retries_faster_than_the_minimum_interval() -> None:
    # when
    plan = after_error(PollState(errors=5), policy=POLICY, rand=lambda: 0.0)
    # then
    assert plan.delay_s == POLICY.min_interval_s


def test_retry_after_is_a_floor_under_the_error_backoff() -> None:
    # when: a 429 asking for 90s
    plan = after_error(PollState(), policy=POLICY, rand=lambda: 1.0, retry_after_s=90)
    # then
    assert plan.delay_s == 90


def test_a_success_ends_the_error_streak() -> None:
    # when
    plan = after_success(PollState(interval_s=10, errors=7), changes=10, has_more=False, policy=POLICY)
    # then
    assert plan.state.errors == 0


@given(
    errors=st.integers(0, 10_000),
    draw=st.floats(-1, 2),
    retry_after=st.none() | st.floats(0, 10**9),
)
def test_an_error_delay_always_stays_between_the_minimum_and_the_caps(
    errors: int, draw: float, retry_after: float | None
) -> None:
    # when
    plan = after_error(PollState(errors=errors), policy=POLICY, rand=lambda: draw, retry_after_s=retry_after)
    # then
    assert POLICY.min_interval_s <= plan.delay_s <= max(POLICY.backoff_max_s, POLICY.retry_after_cap_s)


@given(
    interval=st.floats(0, 10_000),
    changes=st.integers(0, 10_000),
    has_more=st.booleans(),
)
def test_a_success_interval_always_stays_within_min_and_max(interval: float, changes: int, has_more: bool) -> None:
    # when
    plan = after_success(PollState(interval_s=interval), changes=changes, has_more=has_more, policy=POLICY)
    # then
    assert POLICY.min_interval_s <= plan.state.interval_s <= POLICY.max_interval_s


# --- Retry-After --------------------------------------------------------------------------------


def test_retry_after_reads_seconds_and_http_dates() -> None:
    # given
    in_two_minutes = format_datetime(datetime.fromtimestamp(T0 + 120, tz=UTC), usegmt=True)
    # when / then
    assert parse_retry_after("30", now=T0) == 30
    assert parse_retry_after(in_two_minutes, now=T0) == 120
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=T0) == 0


@pytest.mark.parametrize("value", [None, "", "soon", "-5"])
def test_an_unreadable_retry_after_is_ignored(value: str | None) -> None:
    # when / then
    assert parse_retry_after(value, now=T0) is None


# --- circuit breaker ----------------------------------------------------------------------------


def failures(state: BreakerState, n: int, now: float = T0) -> BreakerState:
    for _ in range(n):
        state = breaker_record(state, ok=False, now=now, policy=BREAKER)
    return state


def test_a_closed_breaker_lets_calls_through() -> None:
    # when
    check = breaker_check(BreakerState(), now=T0, policy=BREAKER)
    # then
    assert check.allowed


def test_the_breaker_opens_after_failure_threshold_failures_in_a_row() -> None:
    # when
    almost = failures(BreakerState(), 4)
    opened = failures(almost, 1)
    # then
    assert almost.status is BreakerStatus.CLOSED
    assert opened.status is BreakerStatus.OPEN
    assert opened.opened_at == T0


def test_a_success_clears_the_failure_streak() -> None:
    # given
    state = failures(BreakerState(), 4)
    # when
    state = breaker_record(state, ok=True, now=T0, policy=BREAKER)
    state = failures(state, 4)
    # then
    assert state.status is BreakerStatus.CLOSED


def test_an_open_breaker_refuses_calls_until_the_cool_down_passes() -> None:
    # given
    state = failures(BreakerState(), 5)
    # when
    check = breaker_check(state, now=T0 + 10, policy=BREAKER)
    # then
    assert not check.allowed
    assert check.retry_in_s == 20


def test_after_the_cool_down_exactly_one_probe_goes_through() -> None:
    # given
    state = failures(BreakerState(), 5)
    # when
    probe = breaker_check(state, now=T0 + 30, policy=BREAKER)
    second = breaker_check(probe.state, now=T0 + 31, policy=BREAKER)
    # then
    assert probe.allowed
    assert probe.state.status is BreakerStatus.HALF_OPEN
    assert not second.allowed


def test_a_successful_probe_closes_the_breaker_and_forgets_the_trips() -> None:
    # given
    state = breaker_check(failures(BreakerState(), 5), now=T0 + 30, policy=BREAKER).state
    # when
    state = breaker_record(state, ok=True, now=T0 + 31, policy=BREAKER)
    # then
    assert state == BreakerState()


def test_a_failed_probe_reopens_the_breaker_for_a_doubled_cool_down() -> None:
    # given
    state = breaker_check(failures(BreakerState(), 5), now=T0 + 30, policy=BREAKER).state
    # when
    state = breaker_record(state, ok=False, now=T0 + 31, policy=BREAKER)
    # then
    assert state.status is BreakerStatus.OPEN
    assert breaker_check(state, now=T0 + 31 + 59, policy=BREAKER).retry_in_s == 1
    assert breaker_check(state, now=T0 + 31 + 60, policy=BREAKER).allowed


def test_the_cool_down_stops_growing_at_max_cooldown() -> None:
    # when / then
    assert [BREAKER.cooldown_for(trips) for trips in (1, 2, 3, 5, 6, 100)] == [30, 60, 120, 480, 600, 600]


def test_a_lost_probe_lets_another_caller_probe_after_the_probe_timeout() -> None:
    # given: the probe's worker died without reporting
    state = breaker_check(failures(BreakerState(), 5), now=T0 + 30, policy=BREAKER).state
    # when
    check = breaker_check(state, now=T0 + 30 + 60, policy=BREAKER)
    # then
    assert check.allowed
    assert check.state.probe_at == T0 + 90


def test_outcomes_of_calls_started_before_the_breaker_opened_change_nothing() -> None:
    # given
    state = failures(BreakerState(), 5)
    # when / then
    assert breaker_record(state, ok=True, now=T0 + 1, policy=BREAKER) == state
    assert breaker_record(state, ok=False, now=T0 + 1, policy=BREAKER) == state


@given(
    outcomes=st.lists(st.tuples(st.floats(0, 120), st.booleans()), max_size=100),
)
def test_an_open_breaker_never_allows_a_call_before_its_cool_down(outcomes: list[tuple[float, bool]]) -> None:
    # given
    state, now = BreakerState(), T0
    # when / then
    for dt, ok in outcomes:
        now += dt
        check = breaker_check(state, now=now, policy=BREAKER)
        if state.status is BreakerStatus.OPEN and now < state.opened_at + BREAKER.cooldown_for(state.trips):
            assert not check.allowed
        state = check.state
        if check.allowed:
            state = breaker_record(state, ok=ok, now=now, policy=BREAKER)


# --- stored state -------------------------------------------------------------------------------


def test_poll_and_breaker_state_round_trip_through_json() -> None:
    # given
    poll = PollState(interval_s=12.5, errors=2)
    breaker = BreakerState(status=BreakerStatus.HALF_OPEN, trips=2, opened_at=T0, probe_at=T0 + 60)
    # when
    poll_loaded = PollState.from_dict(json.loads(json.dumps(poll.to_dict())))
    breaker_loaded = BreakerState.from_dict(json.loads(json.dumps(breaker.to_dict())))
    # then
    assert (poll_loaded, breaker_loaded) == (poll, breaker)


def test_the_sources_poll_config_sets_the_interval_bounds() -> None:
    # when
    policy = PollPolicy.from_config({"min_interval_s": 2, "max_interval_s": 120, "page_budget": 20})
    # then
    assert (policy.min_interval_s, policy.max_interval_s, policy.target_changes) == (2, 120, 10)
