"""The replay core (observability/replay.py) on recordings written by hand: no database, no clock."""

from __future__ import annotations

from typing import Any

import pytest

from engines.hysteresis import HysteresisPolicy, HysteresisState
from engines.modes import Mode
from observability.replay import FORMAT, RecordingError, actual_switches, compare, replay

T = 1_800_000_000.0
HYSTERESIS = {"fail_threshold": 2, "recover_threshold": 2, "min_dwell_s": 5, "validation_window_s": 3}


def _signals(now: float, last_push: float) -> dict[str, Any]:
    return {
        "now": now,
        "last_event_at": last_push,
        "last_heartbeat_at": None,
        "expected_interval_s": 1.0,
        "watching_since": T - 100,
    }


def _recording(pushes_stop_at: float, seconds: int, *, polls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A judgement a second; pushes every second until `pushes_stop_at`; the state as the monitor stored it."""
    state = HysteresisState.initial(now=T - 100)
    judgements = []
    for n in range(seconds):
        now = T + n
        judgements.append(
            {
                "t": now,
                "mode": state.mode.value,
                "state": state.to_dict(),
                "signals": _signals(now, min(now, pushes_stop_at)),
                "hysteresis": HYSTERESIS,
                "health": {},
            }
        )
        state = _after(judgements[-1], polls)  # what the monitor stored for the next judgement
    return _document(judgements, polls)


def _after(entry: dict[str, Any], polls: list[dict[str, Any]] | None) -> HysteresisState:
    """The state after one judgement, as the replay decides it (the monitor would have stored it)."""
    from engines.health import StreamSignals, score_stream
    from engines.hysteresis import decide
    from observability.replay import health_policy, poll_facts, silent, state_read

    state = state_read(entry)
    health = score_stream(StreamSignals(**entry["signals"]), health_policy({}))
    caught_up, validation = False, None
    if state.mode is Mode.HYBRID:
        caught_up, validation = poll_facts(
            _document([], polls), since=state.since, now=entry["t"], rest=False, grace_s=2.0
        )
    return decide(
        state,
        verdict=health.verdict,
        now=entry["t"],
        policy=HysteresisPolicy.from_config(HYSTERESIS),
        caught_up=caught_up,
        validation=validation,
        silent=silent(health),
    ).state


def _document(judgements: list[dict[str, Any]], polls: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": 1,
        "source": {"id": 1, "connector": "http"},
        "constants": {"miss_grace_s": 2.0},
        "judgements": judgements,
        "polls": polls or [],
        "polled_events": [],
        "switches": [],
    }


def _poll(at: float, *, finished: float | None = None) -> dict[str, Any]:
    return {"started_at": at, "finished_at": finished or at, "status": "succeeded", "caught_up": True, "missed": 0}


def test_a_silence_degrades_after_the_fail_threshold_and_a_caught_up_poll_moves_it_to_polling():
    # given: pushes stop at T+2, a poll catches up at T+12
    recording = _recording(T + 2, 16, polls=[_poll(T + 12.5)])
    # when
    result = replay(recording)
    # then
    assert [(s.from_mode, s.to_mode, s.transition) for s in result.switches] == [
        ("event", "hybrid", "degrade"),
        ("hybrid", "polling", "caught_up"),
    ]
    assert result.switches[1].t == T + 13  # the first judgement after the poll finished
    assert result.outside_changes == ()


def test_a_poll_still_running_at_a_judgement_is_not_counted_yet():
    # given: the poll started before the degrade but finishes at T+14.5
    recording = _recording(T + 2, 16, polls=[_poll(T + 11.0, finished=T + 14.5)])
    # when
    switches = replay(recording).switches
    # then
    assert switches[1].t == T + 15


def test_another_policy_evolves_its_own_state_and_decides_otherwise():
    recording = _recording(T + 2, 16, polls=[_poll(T + 12.5)])
    patient = HysteresisPolicy.from_config({**HYSTERESIS, "fail_threshold": 30})
    assert replay(recording, hysteresis=patient, follow_recorded_state=False).switches == ()


def test_a_state_changed_outside_the_monitor_is_taken_as_recorded_and_listed():
    # given: an operator forced the source to polling before the 5th judgement
    recording = _recording(T + 100, 8)
    state = HysteresisState.initial(now=T + 4, mode=Mode.POLLING)
    for entry in recording["judgements"][4:]:
        entry["mode"], entry["state"] = state.mode.value, state.to_dict()
        state = _after(entry, None)
    # when
    result = replay(recording)
    # then
    assert result.outside_changes == (T + 4,)
    assert result.steps[4].mode == "polling"  # decided from the forced state, not the one evolved before
    assert [s.transition for s in result.switches] == ["recover"]  # its hold ended at once: two good verdicts


def test_compare_names_what_only_one_side_did():
    recording = _recording(T + 2, 16, polls=[_poll(T + 12.5)])
    replayed = replay(recording).switches
    recording["switches"] = [
        {"at": T + 10.01, "judged_at": replayed[0].t, "from": "event", "to": "hybrid", "transition": "degrade"},
        {"at": T + 30, "judged_at": None, "from": "hybrid", "to": "event", "transition": "forced", "actor": "ann"},
    ]
    comparison = compare(replayed, actual_switches(recording), within=(T, T + 15))
    assert not comparison.matched
    assert comparison.differences == (f"#2: only the replay made hybrid -> polling (caught_up) at {T + 13:.3f}",)


def test_a_document_of_another_format_or_version_is_refused():
    with pytest.raises(RecordingError, match="not a failure recording"):
        replay({"format": "other"})
    with pytest.raises(RecordingError, match="version 2"):
        replay({"format": FORMAT, "version": 2, "judgements": []})
