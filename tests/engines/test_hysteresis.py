"""The HysteresisManager's machine, without a database (engines/hysteresis.py)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from engines.hysteresis import (
    Decision,
    GapFill,
    HysteresisPolicy,
    HysteresisState,
    Phase,
    Transition,
    ValidationResult,
    decide,
    force_mode,
    gap_fill_request,
    hold_in_polling,
    push_allowed_at,
)
from engines.modes import Mode, Verdict

T0 = 1_800_000_000.0
POLICY = HysteresisPolicy()
PASSED = ValidationResult(polls=1, missed=0)
GOOD, BAD = Verdict.GOOD, Verdict.BAD


def tick(
    state: HysteresisState,
    verdict: Verdict,
    now: float,
    policy: HysteresisPolicy = POLICY,
    *,
    caught_up: bool = False,
    validation: ValidationResult | None = None,
) -> Decision:
    return decide(state, verdict=verdict, now=now, policy=policy, caught_up=caught_up, validation=validation)


def run(
    state: HysteresisState,
    verdicts: Iterable[Verdict],
    start: float,
    *,
    step: float = 1.0,
    policy: HysteresisPolicy = POLICY,
    validation: ValidationResult | None = None,
) -> tuple[HysteresisState, list[Decision], float]:
    """Feed verdicts `step` seconds apart; returns the last state, the decisions and the last tick's time."""
    decisions, now = [], start
    for i, verdict in enumerate(verdicts):
        now = start + i * step
        decision = tick(state, verdict, now, policy, validation=validation)
        decisions.append(decision)
        state = decision.state
    return state, decisions, now


def polling_since(t: float, policy: HysteresisPolicy = POLICY, strikes: int = 0) -> HysteresisState:
    return HysteresisState(
        mode=Mode.POLLING, since=t, hold_until=t + policy.dwell_s(strikes), strikes=strikes, quiet_since=t, switches=()
    )


def recovering_since(t: float, strikes: int = 0) -> HysteresisState:
    return HysteresisState(mode=Mode.HYBRID, phase=Phase.RECOVERING, since=t, strikes=strikes, quiet_since=t)


# --- event mode ---------------------------------------------------------------------------------


def test_event_source_stays_in_event_below_fail_threshold() -> None:
    # given
    state = HysteresisState.initial(now=T0)
    # when
    state, decisions, _ = run(state, [BAD, BAD], T0)
    # then
    assert state.mode is Mode.EVENT
    assert not any(d.switched for d in decisions)
    assert decisions[-1].reason == "event: 2/3 bad verdicts in a row"


def test_fail_threshold_bad_verdicts_in_a_row_move_event_to_hybrid_degrading() -> None:
    # given
    state = HysteresisState.initial(now=T0)
    # when
    state, decisions, now = run(state, [BAD, BAD, BAD], T0)
    # then
    assert decisions[-1].switch_to is Mode.HYBRID
    assert decisions[-1].transition is Transition.DEGRADE
    assert (state.mode, state.phase, state.since) == (Mode.HYBRID, Phase.DEGRADING, now)
    assert "3 bad verdicts in a row" in decisions[-1].reason


def test_a_good_verdict_breaks_the_bad_run_in_event_mode() -> None:
    # given
    state = HysteresisState.initial(now=T0)
    # when
    state, _, _ = run(state, [BAD, BAD, GOOD, BAD, BAD], T0)
    # then
    assert state.mode is Mode.EVENT
    assert state.bad == 2


# --- hybrid, degrading --------------------------------------------------------------------------


def test_degrading_hybrid_waits_until_a_poll_catches_up() -> None:
    # given
    state = HysteresisState(mode=Mode.HYBRID, phase=Phase.DEGRADING, since=T0)
    # when
    decision = tick(state, GOOD, T0 + 60, caught_up=False)
    # then
    assert not decision.switched
    assert decision.state.mode is Mode.HYBRID


def test_caught_up_degrading_hybrid_switches_to_polling_for_the_min_dwell() -> None:
    # given
    state = HysteresisState(mode=Mode.HYBRID, phase=Phase.DEGRADING, since=T0)
    # when
    decision = tick(state, BAD, T0 + 2, caught_up=True)
    # then
    assert decision.switch_to is Mode.POLLING
    assert decision.transition is Transition.CAUGHT_UP
    assert decision.state.hold_until == T0 + 2 + POLICY.min_dwell_s
    assert decision.state.phase is None


# --- polling ------------------------------------------------------------------------------------


def test_source_stays_in_polling_while_dwell_has_not_passed() -> None:
    # given
    state = polling_since(T0)
    # when
    state, decisions, _ = run(state, [GOOD] * 9, T0 + 1)  # the 9th good verdict at T0 + 9
    # then
    assert state.mode is Mode.POLLING
    assert state.good == 9
    assert "dwell ends in 1s" in decisions[-1].reason


def test_polling_needs_recover_threshold_good_verdicts_in_a_row() -> None:
    # given: the dwell passed long ago
    state = polling_since(T0)
    # when
    state, _, _ = run(state, [GOOD, GOOD, GOOD, GOOD, BAD, GOOD, GOOD, GOOD, GOOD], T0 + 100)
    # then
    assert state.mode is Mode.POLLING
    assert state.good == 4


def test_polling_moves_to_recovering_hybrid_after_good_verdicts_and_dwell() -> None:
    # given
    state = polling_since(T0)
    # when
    state, decisions, now = run(state, [GOOD] * 5, T0 + 6)  # the 5th at T0 + 10 = the dwell
    # then
    assert decisions[-1].switch_to is Mode.HYBRID
    assert decisions[-1].transition is Transition.RECOVER
    assert (state.mode, state.phase, state.since) == (Mode.HYBRID, Phase.RECOVERING, now)


# --- hybrid, recovering -------------------------------------------------------------------------


def test_recovering_hybrid_waits_for_the_validation_window() -> None:
    # given
    state = recovering_since(T0)
    # when
    decision = tick(state, GOOD, T0 + 29, validation=PASSED)
    # then
    assert not decision.switched
    assert decision.reason == "hybrid (recovering): validating, 29s/30s"


def test_recovering_hybrid_waits_for_a_confirming_poll_after_the_window() -> None:
    # given
    state = recovering_since(T0)
    # when
    without_poll = tick(state, GOOD, T0 + 31, validation=None)
    with_empty_count = tick(state, GOOD, T0 + 31, validation=ValidationResult(polls=0, missed=0))
    # then
    assert not without_poll.switched
    assert not with_empty_count.switched


def test_passed_validation_returns_the_source_to_event() -> None:
    # given
    state = recovering_since(T0)
    # when
    decision = tick(state, GOOD, T0 + 30, validation=ValidationResult(polls=3, missed=0))
    # then
    assert decision.switch_to is Mode.EVENT
    assert decision.transition is Transition.VALIDATED
    assert decision.reason == "validation passed: 3 polls in 30s found nothing push missed"


def test_failed_validation_rolls_back_to_polling_and_doubles_the_dwell() -> None:
    # given
    state = recovering_since(T0)
    # when: a poll found events push had missed, before the window ended
    decision = tick(state, GOOD, T0 + 5, validation=ValidationResult(polls=1, missed=3))
    # then
    assert decision.switch_to is Mode.POLLING
    assert decision.rolled_back
    assert decision.state.strikes == 1
    assert decision.state.hold_until == T0 + 5 + 2 * POLICY.min_dwell_s
    assert "polls found 3 events push missed" in decision.reason


def test_bad_verdicts_while_validating_roll_the_recovery_back() -> None:
    # given
    state = recovering_since(T0)
    # when
    state, decisions, _ = run(state, [BAD, BAD, BAD], T0 + 1)
    # then
    assert decisions[-1].rolled_back
    assert state.mode is Mode.POLLING


def test_repeated_rollbacks_grow_the_dwell_up_to_max_dwell() -> None:
    # given
    policy = HysteresisPolicy(min_dwell_s=10, max_dwell_s=50, flap_switches=100)
    # when
    dwells = []
    state, now = recovering_since(T0), T0
    for _ in range(5):
        rolled = tick(state, GOOD, now, policy, validation=ValidationResult(polls=1, missed=1)).state
        dwells.append(rolled.hold_until - now)
        now = rolled.hold_until
        state = run(rolled, [GOOD] * policy.recover_threshold, now, policy=policy)[0]
        now += policy.recover_threshold
    # then
    assert dwells == [20, 40, 50, 50, 50]


def test_a_strike_is_forgiven_after_each_quiet_flap_window() -> None:
    # given: two strikes, the last switch at T0
    state = HysteresisState(mode=Mode.EVENT, since=T0, strikes=2, quiet_since=T0, switches=(T0,))
    # when
    after_one_window = tick(state, GOOD, T0 + 300).state
    after_two_windows = tick(after_one_window, GOOD, T0 + 650).state
    # then
    assert after_one_window.strikes == 1
    assert after_one_window.switches == ()
    assert after_two_windows.strikes == 0


# --- flapping -----------------------------------------------------------------------------------


def outage_and_recovery(state: HysteresisState, start: float) -> tuple[HysteresisState, list[Decision], float]:
    """Drive one full cycle (event -> hybrid -> polling -> hybrid -> event) as fast as the policy lets it."""
    decisions = []
    state, ds, now = run(state, [BAD] * 3, start)
    decisions += ds
    d = tick(state, BAD, now + 1, caught_up=True)
    decisions.append(d)
    state, ds, now = run(d.state, [GOOD] * 5, now + 7)
    decisions += ds
    d = tick(state, GOOD, now + 30, validation=PASSED)
    decisions.append(d)
    return d.state, decisions, now + 30


def test_one_clean_round_trip_is_not_flapping() -> None:
    # given
    state = HysteresisState.initial(now=T0)
    # when
    state, decisions, _ = outage_and_recovery(state, T0)
    # then
    assert [d.switch_to for d in decisions if d.switched] == [Mode.HYBRID, Mode.POLLING, Mode.HYBRID, Mode.EVENT]
    assert not any(d.flapping for d in decisions)
    assert state.mode is Mode.EVENT


def test_a_second_outage_within_the_flap_window_is_flapping_and_holds_the_source_in_polling() -> None:
    # given: one round trip done, the next outage 10s later
    state, _, now = outage_and_recovery(HysteresisState.initial(now=T0), T0)
    # when
    state, decisions, now = outage_and_recovery(state, now + 10)
    # then
    flap = next(d for d in decisions if d.flapping)
    assert flap.transition is Transition.FLAP_HOLD
    assert flap.switch_to is None  # it was already in polling: held there
    assert flap.state.mode is Mode.POLLING
    assert "flapping: 6 switches in the last 300s" in flap.reason
    assert state.mode is Mode.POLLING


def test_flap_hold_lasts_until_the_window_has_room_for_a_whole_recovery() -> None:
    # given: four switches at T0..T0+3, in polling since T0 + 3
    policy = POLICY
    state = HysteresisState(
        mode=Mode.POLLING,
        since=T0 + 3,
        hold_until=T0 + 13,
        good=4,
        quiet_since=T0 + 3,
        switches=(T0, T0 + 1, T0 + 2, T0 + 3),
    )
    # when
    decision = tick(state, GOOD, T0 + 20, policy)
    # then: the 3rd newest switch (T0 + 1) leaves the window at T0 + 301
    assert decision.flapping
    assert decision.state.strikes == 1
    assert decision.state.hold_until == T0 + 1 + policy.flap_window_s
    assert decision.state.good == 0


def test_flap_hold_grows_the_dwell_exponentially_when_it_outlasts_the_window() -> None:
    # given: a short window, so the dwell is what holds
    policy = HysteresisPolicy(min_dwell_s=10, max_dwell_s=600, flap_switches=2, flap_window_s=15)
    state = HysteresisState(
        mode=Mode.POLLING, since=T0, hold_until=T0, good=5, strikes=2, quiet_since=T0, switches=(T0, T0)
    )
    # when
    decision = tick(state, GOOD, T0 + 1, policy)
    # then: three strikes, 10 * 2**3
    assert decision.flapping
    assert decision.state.hold_until == T0 + 1 + 80


def test_flapping_while_validating_sends_the_source_back_to_polling() -> None:
    # given: validating, with four switches in the window
    state = HysteresisState(
        mode=Mode.HYBRID,
        phase=Phase.RECOVERING,
        since=T0 + 40,
        quiet_since=T0 + 40,
        switches=(T0, T0 + 10, T0 + 20, T0 + 40),
    )
    # when
    decision = tick(state, GOOD, T0 + 70, validation=PASSED)
    # then
    assert decision.flapping
    assert decision.switch_to is Mode.POLLING
    assert decision.rolled_back
    assert decision.state.switches[-1] == T0 + 70
    assert decision.state.hold_until == T0 + 20 + POLICY.flap_window_s


def test_switches_older_than_the_flap_window_do_not_count() -> None:
    # given: four switches, all over 300s ago
    state = replace(polling_since(T0 + 3), good=4, switches=(T0, T0 + 1, T0 + 2, T0 + 3))
    # when
    decision = tick(state, GOOD, T0 + 303.5)
    # then
    assert decision.switch_to is Mode.HYBRID
    assert not decision.flapping


def test_a_flap_hold_keeps_push_out_of_reach_until_the_hold_and_a_validation_have_passed() -> None:
    # given: held in polling by a flap until T0 + 301
    state = HysteresisState(
        mode=Mode.POLLING, since=T0 + 3, hold_until=T0 + 13, good=4, quiet_since=T0 + 3,
        switches=(T0, T0 + 1, T0 + 2, T0 + 3),
    )  # fmt: skip
    held = tick(state, GOOD, T0 + 20).state
    # when
    allowed = push_allowed_at(held, policy=POLICY)
    # then
    assert allowed == T0 + 1 + POLICY.flap_window_s + POLICY.validation_window_s
    # and nothing holds a source on push, or one still catching up (its stream keeps it, not the policy)
    assert push_allowed_at(HysteresisState.initial(now=T0), policy=POLICY) is None
    degrading = tick(HysteresisState.initial(now=T0), BAD, T0 + 1, replace(POLICY, fail_threshold=1)).state
    assert degrading.phase is Phase.DEGRADING and push_allowed_at(degrading, policy=POLICY) is None


def comes_and_goes(state: HysteresisState, start: float, times: int, *, silent: bool = True) -> list[Decision]:
    """In polling: the push comes back for two good ticks, then a bad one, `times` times."""
    decisions, now = [], start
    for _ in range(times):
        for verdict in (GOOD, GOOD, BAD):
            now += 1
            decision = decide(state, verdict=verdict, now=now, policy=POLICY, silent=silent and verdict is BAD)
            decisions.append(decision)
            state = decision.state
    return decisions


def test_a_push_that_keeps_going_quiet_in_polling_is_flapping_without_a_switch() -> None:
    # given: in polling, the push comes and goes faster than recover_threshold lets it back
    state = polling_since(T0)
    # when
    decisions = comes_and_goes(state, T0, POLICY.flap_switches)
    # then: the flap_switches-th silence is flapping; the source stays in polling, held longer
    flaps = [d for d in decisions if d.flapping]
    assert flaps == [decisions[-1]]
    flap = flaps[0]
    assert flap.transition is Transition.FLAP_HOLD and not any(d.switched for d in decisions)
    assert flap.state.mode is Mode.POLLING and flap.state.strikes == 1
    assert flap.state.hold_until == T0 + 3 * POLICY.flap_switches + POLICY.dwell_s(1)
    assert f"the push went quiet again {POLICY.flap_switches} times" in flap.reason


def test_bad_verdicts_that_are_not_silence_do_not_count_as_the_push_coming_and_going() -> None:
    # given: in polling, refused pushes (not silence) come and go
    state = polling_since(T0)
    # when
    decisions = comes_and_goes(state, T0, POLICY.flap_switches * 2, silent=False)
    # then
    assert not any(d.flapping for d in decisions)
    assert decisions[-1].state.silences == ()


def test_silences_older_than_the_flap_window_do_not_count() -> None:
    # given: three silences, then a long quiet in polling
    state = comes_and_goes(polling_since(T0), T0, POLICY.flap_switches - 1)[-1].state
    # when: the next one comes after the window
    later = comes_and_goes(state, T0 + POLICY.flap_window_s + 10, 1)
    # then
    assert not later[-1].flapping and len(later[-1].state.silences) == 1


def test_a_hold_set_while_degrading_is_kept_when_the_source_enters_polling() -> None:
    # given: on its way down, healing holds it for a minute before its polls caught up
    degrading = tick(HysteresisState.initial(now=T0), BAD, T0 + 1, replace(POLICY, fail_threshold=1)).state
    held = replace(degrading, hold_until=T0 + 61)
    # when
    decision = tick(held, BAD, T0 + 2, caught_up=True)
    # then: polling, for the longer of the hold and the dwell
    assert decision.switch_to is Mode.POLLING
    assert decision.state.hold_until == T0 + 61 > T0 + 2 + POLICY.dwell_s(0)
    assert tick(degrading, BAD, T0 + 2, caught_up=True).state.hold_until == T0 + 2 + POLICY.dwell_s(0)


# --- forced modes -------------------------------------------------------------------------------


def test_forcing_polling_applies_the_dwell_and_counts_as_a_switch() -> None:
    # given
    state = HysteresisState.initial(now=T0)
    # when
    decision = force_mode(state, to=Mode.POLLING, now=T0 + 5, policy=POLICY, reason="operator")
    # then
    assert decision.switch_to is Mode.POLLING
    assert decision.transition is Transition.FORCED
    assert decision.state.hold_until == T0 + 15
    assert decision.state.switches == (T0 + 5,)


def test_forcing_hybrid_starts_a_recovery_on_probation() -> None:
    # given
    state = polling_since(T0)
    # when
    decision = force_mode(state, to=Mode.HYBRID, now=T0 + 1, policy=POLICY, reason="healing: resume push")
    # then
    assert decision.state.phase is Phase.RECOVERING
    assert decision.reason == "forced: healing: resume push"


def test_forcing_the_current_mode_is_not_a_switch() -> None:
    # given
    state = HysteresisState.initial(now=T0)
    # when
    decision = force_mode(state, to=Mode.EVENT, now=T0 + 1, policy=POLICY, reason="operator")
    # then
    assert not decision.switched


def test_holding_an_event_source_in_polling_forces_the_switch_and_holds_past_the_dwell() -> None:
    # given
    state = HysteresisState.initial(now=T0)
    # when
    decision = hold_in_polling(state, now=T0 + 5, policy=POLICY, reason="healing", hold_s=60)
    # then: a forced switch, counted towards flapping, held for the longer of the dwell and the hold
    assert (decision.switch_to, decision.transition) == (Mode.POLLING, Transition.FORCED)
    assert decision.state.switches == (T0 + 5,)
    assert decision.state.hold_until == T0 + 65


def test_holding_a_source_in_polling_or_on_its_way_down_extends_its_hold_without_a_switch() -> None:
    # given: one in polling held until T0 + 100, one degrading
    held = replace(polling_since(T0), hold_until=T0 + 100)
    degrading = HysteresisState(mode=Mode.HYBRID, phase=Phase.DEGRADING, since=T0, quiet_since=T0, switches=(T0,))
    # when
    longer = hold_in_polling(held, now=T0 + 1, policy=POLICY, reason="healing", hold_s=200)
    shorter = hold_in_polling(held, now=T0 + 1, policy=POLICY, reason="healing", hold_s=10)
    down = hold_in_polling(degrading, now=T0 + 1, policy=POLICY, reason="healing", hold_s=60)
    # then: the state as it was, its hold never shortened
    assert not (longer.switched or shorter.switched or down.switched)
    assert longer.state == replace(held, hold_until=T0 + 201)
    assert shorter.state == held
    assert down.state == replace(degrading, hold_until=T0 + 61)


# --- gap fill -----------------------------------------------------------------------------------


def test_a_small_gap_in_event_mode_asks_for_a_gap_fill_from_the_contiguous_seq() -> None:
    # when
    request = gap_fill_request(mode=Mode.EVENT, contiguous_seq=41, highest_seq=45, upstream_seq=None)
    # then
    assert request == GapFill(after_seq=41, missing=4)


def test_being_behind_the_upstream_head_is_a_gap_to_fill() -> None:
    # when
    request = gap_fill_request(mode=Mode.EVENT, contiguous_seq=41, highest_seq=41, upstream_seq=50)
    # then
    assert request == GapFill(after_seq=41, missing=9)


@pytest.mark.parametrize(
    ("mode", "contiguous", "highest", "upstream"),
    [
        (Mode.HYBRID, 41, 45, None),  # hybrid already polls from the watermark
        (Mode.POLLING, 41, 45, None),
        (Mode.EVENT, 41, 41, 41),  # no gap
        (Mode.EVENT, None, 45, 50),  # no watermark yet
        (Mode.EVENT, 41, 142, None),  # too big: a broken stream, not a hiccup
    ],
)
def test_no_gap_fill_outside_event_mode_without_a_gap_or_for_a_big_one(
    mode: Mode, contiguous: int | None, highest: int | None, upstream: int | None
) -> None:
    # when
    request = gap_fill_request(mode=mode, contiguous_seq=contiguous, highest_seq=highest, upstream_seq=upstream)
    # then
    assert request is None


# --- state and policy ---------------------------------------------------------------------------


def test_state_round_trips_through_json() -> None:
    # given
    state = HysteresisState(
        mode=Mode.HYBRID, phase=Phase.RECOVERING, since=T0, bad=1, good=2, hold_until=T0 - 5, strikes=3,
        quiet_since=T0 - 1, switches=(T0 - 10, T0),
    )  # fmt: skip
    # when
    loaded = HysteresisState.from_dict(json.loads(json.dumps(state.to_dict())))
    # then
    assert loaded == state


def test_an_empty_stored_state_reads_as_the_default_event_state() -> None:
    # when
    state = HysteresisState.from_dict({})
    # then
    assert state == HysteresisState()
    assert state.mode is Mode.EVENT


@pytest.mark.parametrize(
    "data",
    [
        {"mode": "sideways"},
        {"mode": "hybrid"},  # hybrid without a phase
        {"mode": "event", "phase": "recovering"},
        {"bad": "three"},
        {"strikes": True},
        {"since": float("nan")},
        {"good": 1.5},
        {"switches": "T0"},
    ],
)
def test_a_corrupt_stored_state_is_refused(data: dict[str, object]) -> None:
    # when / then
    with pytest.raises(ValueError):
        HysteresisState.from_dict(data)


def test_policy_reads_the_sources_hysteresis_config_and_keeps_the_defaults() -> None:
    # when
    policy = HysteresisPolicy.from_config({"fail_threshold": 2, "min_dwell_s": 5, "unknown": "ignored"})
    # then
    assert policy == HysteresisPolicy(fail_threshold=2, min_dwell_s=5.0)
    assert (policy.recover_threshold, policy.max_dwell_s, policy.flap_switches) == (5, 600.0, 4)
    assert (policy.flap_window_s, policy.validation_window_s) == (300.0, 30.0)


@pytest.mark.parametrize(
    "config",
    [{"flap_switches": 1}, {"min_dwell_s": 700}, {"fail_threshold": 0}, {"flap_window_s": 0}, {"fail_threshold": "3"}],
)
def test_policy_refuses_values_the_machine_cannot_honour(config: dict[str, object]) -> None:
    # when / then
    with pytest.raises(ValueError):
        HysteresisPolicy.from_config(config)


# --- properties ---------------------------------------------------------------------------------


@st.composite
def policies(draw: st.DrawFn) -> HysteresisPolicy:
    min_dwell = draw(st.floats(0, 40))
    return HysteresisPolicy(
        fail_threshold=draw(st.integers(1, 4)),
        recover_threshold=draw(st.integers(1, 6)),
        min_dwell_s=min_dwell,
        max_dwell_s=draw(st.floats(min_dwell, 200)),
        flap_switches=draw(st.integers(2, 6)),
        flap_window_s=draw(st.floats(1, 400)),
        validation_window_s=draw(st.floats(0, 60)),
    )


# A trace is a list of segments: a run of ticks with the same verdict, spacing,
# poll outcome and validation, so that runs long enough to cross the
# thresholds come up often rather than by luck.
Segment = tuple[Verdict, int, float, bool, ValidationResult | None, bool]
segments = st.tuples(
    st.sampled_from(Verdict),
    st.integers(1, 8),  # ticks in the run
    st.one_of(st.just(0.0), st.floats(0, 3), st.floats(0, 40), st.floats(0, 500)),  # time between ticks
    st.booleans(),  # caught_up
    st.one_of(st.none(), st.builds(ValidationResult, polls=st.integers(0, 2), missed=st.integers(0, 1))),
    st.booleans(),  # a bad verdict is the push going silent
)


def simulate(
    policy: HysteresisPolicy, trace: list[Segment]
) -> tuple[HysteresisState, float, list[tuple[float, HysteresisState, Decision]]]:
    state, now = HysteresisState.initial(now=T0), T0
    history = []
    for verdict, ticks, dt, caught_up, validation, silent in trace:
        for _ in range(ticks):
            now += dt
            decision = decide(
                state,
                verdict=verdict,
                now=now,
                policy=policy,
                caught_up=caught_up,
                validation=validation,
                silent=silent,
            )
            history.append((now, state, decision))
            state = decision.state
    return state, now, history


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=policies(), trace=st.lists(segments, min_size=4, max_size=60))
def test_no_verdict_sequence_switches_more_often_than_the_policy_allows(
    policy: HysteresisPolicy, trace: list[Segment]
) -> None:
    # given / when
    _, _, history = simulate(policy, trace)
    # then: at most flap_switches + 2 switches in any flap window
    switch_times = [now for now, _, d in history if d.switched]
    busiest = max((sum(1 for s in switch_times if t - policy.flap_window_s < s <= t) for t in switch_times), default=0)
    target(float(busiest - policy.flap_switches), label="busiest window over flap_switches")
    assert busiest <= policy.flap_switches + 2

    entered_polling_at: float | None = None
    for now, before, decision in history:
        assert HysteresisState.from_dict(json.loads(json.dumps(decision.state.to_dict()))) == decision.state
        if decision.flapping:
            assert decision.state.mode is Mode.POLLING
        if decision.switched:
            assert decision.state.mode is decision.switch_to is not before.mode
        if decision.switch_to is Mode.POLLING:
            entered_polling_at = now
        if before.mode is Mode.POLLING and decision.switched:
            # never out of polling before the dwell fixed on entry (or grown by a flap)
            assert entered_polling_at is not None
            assert now >= before.hold_until
            assert now - entered_polling_at >= policy.min_dwell_s - 1e-6


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=policies(), trace=st.lists(segments, min_size=4, max_size=30), step=st.floats(0.5, 5))
def test_a_stream_that_stays_healthy_long_enough_ends_in_event_mode_from_any_reachable_state(
    policy: HysteresisPolicy, trace: list[Segment], step: float
) -> None:
    # given: whatever the history did to the state
    state, now, _ = simulate(policy, trace)
    # when: good verdicts, polls caught up, validations that find nothing
    # Per round: the longest hold, the good run, the validation window. At most
    # a catch-up, a flap at each move towards push, and the final recovery.
    per_round = max(policy.max_dwell_s, policy.flap_window_s) + (policy.recover_threshold + 2) * step
    deadline = now + step + 2 * (per_round + policy.validation_window_s + step)
    while state.mode is not Mode.EVENT and now <= deadline:
        now += step
        state = tick(state, GOOD, now, policy, caught_up=True, validation=PASSED).state
    # then
    assert state.mode is Mode.EVENT
    for _ in range(50):
        now += step
        decision = tick(state, GOOD, now, policy, caught_up=True, validation=PASSED)
        assert not decision.switched
        state = decision.state


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=policies(), trace=st.lists(segments, min_size=1, max_size=30), step=st.floats(0.25, 20))
def test_no_held_source_is_back_in_event_mode_before_push_allowed_at_says(
    policy: HysteresisPolicy, trace: list[Segment], step: float
) -> None:
    # given: whatever the history did to the state
    state, now, _ = simulate(policy, trace)
    allowed = push_allowed_at(state, policy=policy)
    assert (allowed is None) == (state.mode is Mode.EVENT or state.phase is Phase.DEGRADING)
    # when: the healthiest stream there is (good verdicts, polls caught up, validations that pass)
    deadline = now + 3 * (max(policy.max_dwell_s, policy.flap_window_s) + policy.validation_window_s) + 50 * step
    while state.mode is not Mode.EVENT and now <= deadline:
        now += step
        state = tick(state, GOOD, now, policy, caught_up=True, validation=PASSED).state
    # then: it got there (healthy streams recover), and never sooner than the policy allowed
    assert state.mode is Mode.EVENT
    if allowed is not None:
        assert now >= allowed - 1e-6


def test_a_stored_state_is_read_back_only_for_the_mode_the_source_is_in() -> None:
    # given: a state stored in polling
    stored = HysteresisState.initial(now=10.0, mode=Mode.POLLING).to_dict()
    # then: read back for a source in polling; a source forced to event since starts afresh in event
    assert HysteresisState.stored_or_initial(stored, mode=Mode.POLLING, now=50.0) == (
        HysteresisState.from_dict(stored),
        False,
    )
    assert HysteresisState.stored_or_initial(stored, mode=Mode.EVENT, now=50.0) == (
        HysteresisState.initial(now=50.0, mode=Mode.EVENT),
        False,
    )


def test_an_unreadable_or_missing_state_starts_afresh_and_hybrid_starts_as_polling() -> None:
    fresh = HysteresisState.initial(now=5.0, mode=Mode.POLLING)
    assert HysteresisState.stored_or_initial({"bad": "many"}, mode=Mode.HYBRID, now=5.0) == (fresh, True)
    assert HysteresisState.stored_or_initial(None, mode=Mode.HYBRID, now=5.0) == (fresh, False)
    assert HysteresisState.stored_or_initial({}, mode=Mode.POLLING, now=5.0) == (fresh, False)
