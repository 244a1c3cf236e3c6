"""StreamMonitor scoring, without a database (engines/health.py)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, fields, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engines.health import HealthPolicy, StreamSignals, score_stream, seq_gap, update_expected_interval
from engines.modes import Verdict

T0 = 1_800_000_000.0


def healthy(**changes: object) -> StreamSignals:
    """A stream delivering every second, in order, without errors, at its baseline."""
    signals = StreamSignals(
        now=T0,
        last_event_at=T0 - 0.5,
        last_heartbeat_at=None,
        expected_interval_s=1.0,
        contiguous_seq=100,
        highest_seq=100,
        upstream_seq=100,
        push_errors=0,
        push_total=60,
        delivery_rate=1.0,
        baseline_rate=1.0,
    )
    return replace(signals, **changes)  # type: ignore[arg-type]


# --- the whole score ----------------------------------------------------------------------------


def test_a_stream_delivering_on_rhythm_scores_100_and_is_good() -> None:
    # when
    health = score_stream(healthy())
    # then
    assert health.score == 100
    assert health.verdict is Verdict.GOOD
    assert set(health.penalties.values()) == {0}


def test_health_explains_itself_in_a_json_ready_dict() -> None:
    # given
    signals = healthy(now=T0 + 20, highest_seq=110)
    # when
    explained = json.loads(json.dumps(score_stream(signals).as_dict()))
    # then
    assert explained["verdict"] == "bad"
    assert set(explained["reasons"]) == {"silence", "gaps", "push_errors", "delivery_rate"}
    assert explained["reasons"]["silence"] == "20.5s since the last event or heartbeat, 5.0s allowed (1.0s rhythm)"
    assert explained["measures"]["gap"] == 10
    assert explained["penalties"]["silence"] == 100


def test_the_signals_dict_holds_every_field_json_ready() -> None:
    # given: every field set, each to a value of its own
    values = {f.name: float(n) for n, f in enumerate(fields(StreamSignals), start=1)}
    # when
    written = StreamSignals(**values).as_dict()  # type: ignore[arg-type]
    # then: what the audit rows and the flight recorder store, field for field
    assert json.loads(json.dumps(written)) == values == asdict(StreamSignals(**values))  # type: ignore[arg-type]


def test_two_half_problems_together_turn_the_verdict_bad() -> None:
    # given: some silence and some push errors, neither bad on its own
    silence_only = healthy(now=T0 + 6.5)  # 7s silent, 5s allowed: 40% of the way to dead
    errors_only = healthy(push_errors=6)  # 10% errors
    # when
    both = score_stream(replace(silence_only, push_errors=6))
    # then
    assert score_stream(silence_only).verdict is Verdict.GOOD
    assert score_stream(errors_only).verdict is Verdict.GOOD
    assert both.verdict is Verdict.BAD
    assert both.score == 100 - both.penalties["silence"] - both.penalties["push_errors"]


# --- silence ------------------------------------------------------------------------------------


def test_silence_within_tolerance_costs_nothing() -> None:
    # given: 10s expected interval, silent for 29s (3 x 10s allowed)
    signals = healthy(expected_interval_s=10.0, last_event_at=T0 - 29)
    # when
    health = score_stream(signals)
    # then
    assert health.penalties["silence"] == 0


def test_silence_past_twice_the_allowance_is_bad_on_its_own() -> None:
    # given
    signals = healthy(expected_interval_s=10.0, last_event_at=T0 - 60)
    # when
    health = score_stream(signals)
    # then
    assert health.penalties["silence"] == 100
    assert health.verdict is Verdict.BAD


def test_silence_is_judged_against_the_heartbeat_period_when_it_is_longer() -> None:
    # given: events expected every second, but the upstream only heartbeats every 30s when quiet
    signals = healthy(last_event_at=T0 - 60, last_heartbeat_at=T0 - 60, heartbeat_interval_s=30.0)
    # when
    health = score_stream(signals)
    # then: 60s < 3 x 30s
    assert health.measures["allowed_silence_s"] == 90
    assert health.penalties["silence"] == 0


def test_a_recent_heartbeat_keeps_a_quiet_stream_alive() -> None:
    # given
    signals = healthy(last_event_at=T0 - 600, last_heartbeat_at=T0 - 1)
    # when
    health = score_stream(signals)
    # then
    assert health.measures["silence_s"] == 1
    assert health.verdict is Verdict.GOOD


def test_silence_is_never_judged_in_less_than_min_silence() -> None:
    # given: a very fast stream silent for 4s
    signals = healthy(expected_interval_s=0.1, last_event_at=T0 - 4)
    # when
    health = score_stream(signals)
    # then
    assert health.measures["allowed_silence_s"] == 5
    assert health.penalties["silence"] == 0


def test_before_anything_arrives_silence_counts_from_when_watching_started() -> None:
    # given
    signals = healthy(last_event_at=None, watching_since=T0 - 60)
    # when
    health = score_stream(signals)
    # then
    assert health.penalties["silence"] == 100
    assert "nothing heard" in health.reasons["silence"]


def test_silence_inside_an_outage_of_beastflow_is_not_counted() -> None:
    # given: silent for 600 s, 580 of them while BeastFlow itself was down
    signals = healthy(expected_interval_s=10.0, last_event_at=T0 - 600, outage_from=T0 - 590, outage_until=T0 - 10)
    # when
    health = score_stream(signals)
    # then
    assert health.measures["silence_s"] == pytest.approx(20)
    assert health.penalties["silence"] == 0
    assert "580.0s of BeastFlow's own outage not counted" in health.reasons["silence"]


def test_silence_before_an_outage_still_counts() -> None:
    # given: silent for 300 s before BeastFlow went down for 200 s
    signals = healthy(expected_interval_s=10.0, last_event_at=T0 - 500, outage_from=T0 - 200, outage_until=T0)
    # when
    health = score_stream(signals)
    # then
    assert health.measures["silence_s"] == pytest.approx(300)
    assert health.verdict is Verdict.BAD


def test_an_outage_before_the_last_event_changes_nothing() -> None:
    signals = healthy(expected_interval_s=10.0, last_event_at=T0 - 20, outage_from=T0 - 900, outage_until=T0 - 300)
    assert score_stream(signals).measures["silence_s"] == pytest.approx(20)


@given(
    last=st.floats(min_value=0, max_value=10_000),
    start=st.floats(min_value=0, max_value=10_000),
    length=st.floats(min_value=0, max_value=10_000),
)
def test_an_outage_takes_off_at_most_its_length_and_never_makes_silence_negative(
    last: float, start: float, length: float
) -> None:
    plain = healthy(expected_interval_s=10.0, last_event_at=T0 - last)
    forgiven = replace(plain, outage_from=T0 - start - length, outage_until=T0 - start)
    without, within = score_stream(plain).measures["silence_s"], score_stream(forgiven).measures["silence_s"]
    assert 0 <= within <= without
    assert within >= without - length - 1e-6


def test_a_resume_after_the_last_event_restarts_the_silence() -> None:
    # given: silent for ten minutes, resumed 20 s ago
    signals = healthy(expected_interval_s=10.0, last_event_at=T0 - 600, resumed_at=T0 - 20)
    # when
    health = score_stream(signals)
    # then
    assert health.measures["silence_s"] == pytest.approx(20)
    assert health.penalties["silence"] == 0
    assert "since it was resumed" in health.reasons["silence"]


def test_an_event_after_the_resume_is_what_silence_counts_from() -> None:
    signals = healthy(expected_interval_s=10.0, last_event_at=T0 - 5, resumed_at=T0 - 20)
    health = score_stream(signals)
    assert health.measures["silence_s"] == pytest.approx(5)
    assert "since the last event" in health.reasons["silence"]


def test_without_any_timestamp_silence_is_not_judged() -> None:
    # when
    health = score_stream(healthy(last_event_at=None))
    # then
    assert health.penalties["silence"] == 0


# --- gaps ---------------------------------------------------------------------------------------


def test_a_small_gap_costs_little_and_stays_good() -> None:
    # given: 50 seqs missing below the highest received
    signals = healthy(contiguous_seq=100, highest_seq=150, upstream_seq=150)
    # when
    health = score_stream(signals)
    # then
    assert health.penalties["gaps"] == 10
    assert health.verdict is Verdict.GOOD
    assert "a targeted poll fills it" in health.reasons["gaps"]


def test_being_far_behind_the_upstream_head_is_bad() -> None:
    # given: the heartbeat says the upstream is 500 seqs ahead
    signals = healthy(contiguous_seq=100, highest_seq=100, upstream_seq=600)
    # when
    health = score_stream(signals)
    # then
    assert health.penalties["gaps"] == 100
    assert health.verdict is Verdict.BAD


@pytest.mark.parametrize(
    ("contiguous", "highest", "upstream", "gap"),
    [
        (10, 12, None, 2),
        (10, 10, 15, 5),
        (10, 12, 15, 5),
        (10, 12, 8, 2),  # a stale heartbeat behind us is not a gap
        (None, 12, 15, 0),  # no watermark: a hole cannot be told from a start
        (10, None, None, 0),
    ],
)
def test_the_gap_is_the_larger_of_the_hole_and_the_distance_to_the_upstream_head(
    contiguous: int | None, highest: int | None, upstream: int | None, gap: int
) -> None:
    # when / then
    assert seq_gap(contiguous, highest, upstream) == gap


# --- push errors and delivery rate ---------------------------------------------------------------


def test_a_push_error_rate_at_the_dead_rate_is_bad() -> None:
    # given
    signals = healthy(push_errors=12, push_total=60)
    # when
    health = score_stream(signals)
    # then
    assert health.measures["error_rate"] == 0.2
    assert health.penalties["push_errors"] == 100
    assert health.verdict is Verdict.BAD


def test_too_few_pushes_are_not_judged() -> None:
    # given: 3 of 4 failed, but 4 deliveries say little
    signals = healthy(push_errors=3, push_total=4)
    # when
    health = score_stream(signals)
    # then
    assert health.penalties["push_errors"] == 0
    assert "too few to judge" in health.reasons["push_errors"]


def test_error_counters_reset_between_reads_never_count_over_100_percent() -> None:
    # when
    health = score_stream(healthy(push_errors=80, push_total=20))
    # then
    assert health.measures["error_rate"] == 1.0


def test_a_delivery_rate_drop_alone_does_not_turn_the_verdict_bad() -> None:
    # given: nothing at all delivered in the window, yet the last event is recent
    signals = healthy(delivery_rate=0.0, baseline_rate=5.0)
    # when
    health = score_stream(signals)
    # then
    assert health.penalties["delivery_rate"] == 40
    assert health.verdict is Verdict.GOOD


def test_a_delivery_rate_is_not_judged_without_a_baseline() -> None:
    # when
    health = score_stream(healthy(delivery_rate=0.0, baseline_rate=None))
    # then
    assert health.penalties["delivery_rate"] == 0


# --- missed pushes (an upstream without seqs, audited by polls) ----------------------------------


def test_without_an_audit_finding_missed_pushes_are_not_judged() -> None:
    # when
    health = score_stream(healthy())
    # then
    assert "missed_pushes" not in health.penalties
    assert health.score == 100


def test_an_audit_that_found_nothing_missed_costs_nothing() -> None:
    # when
    health = score_stream(healthy(missed_pushes=0))
    # then
    assert health.penalties["missed_pushes"] == 0
    assert health.measures["missed_pushes"] == 0
    assert health.verdict is Verdict.GOOD


def test_one_missed_push_turns_an_otherwise_perfect_stream_bad() -> None:
    # when
    health = score_stream(healthy(missed_pushes=1))
    # then
    assert health.verdict is Verdict.BAD
    assert health.penalties["missed_pushes"] == 51
    assert health.reasons["missed_pushes"] == "the latest poll found 1 record(s) push had missed"


@pytest.mark.parametrize("bad_below", [1, 30, 50, 90, 100])
def test_one_missed_push_is_bad_whatever_the_verdict_line(bad_below: int) -> None:
    # when
    health = score_stream(healthy(missed_pushes=1), HealthPolicy(bad_below=bad_below))
    # then
    assert health.verdict is Verdict.BAD


def test_the_missed_push_penalty_grows_with_the_misses_up_to_100() -> None:
    # when
    penalties = [score_stream(healthy(missed_pushes=n)).penalties["missed_pushes"] for n in (1, 2, 5, 10, 500)]
    # then
    assert penalties == sorted(penalties)
    assert penalties[0] < penalties[2] < penalties[3] == penalties[4] == 100


def test_a_missed_push_is_a_penalty_beside_silence_not_instead_of_it() -> None:
    # given: silent past twice the allowance and an audit finding misses
    signals = healthy(now=T0 + 20, missed_pushes=3)
    # when
    health = score_stream(signals)
    # then
    assert health.penalties["silence"] == 100
    assert health.penalties["missed_pushes"] > 0
    assert health.score == 0


def test_impossible_missed_push_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="dead_missed_pushes"):
        HealthPolicy(dead_missed_pushes=0)


@given(
    silence=st.floats(0, 10_000),
    interval=st.floats(0.01, 3600),
    hole=st.integers(0, 5_000),
    errors=st.integers(0, 500),
    total=st.integers(0, 500),
    rate=st.none() | st.floats(0, 1_000),
    baseline=st.none() | st.floats(0, 1_000),
    missed=st.none() | st.integers(0, 1_000),
)
def test_any_signals_give_a_score_between_0_and_100_that_matches_the_verdict(
    silence: float,
    interval: float,
    hole: int,
    errors: int,
    total: int,
    rate: float | None,
    baseline: float | None,
    missed: int | None,
) -> None:
    # given
    signals = healthy(
        last_event_at=T0 - silence,
        expected_interval_s=interval,
        highest_seq=100 + hole,
        push_errors=errors,
        push_total=total,
        delivery_rate=rate,
        baseline_rate=baseline,
        missed_pushes=missed,
    )
    # when
    health = score_stream(signals)
    # then
    assert 0 <= health.score <= 100
    if missed:
        assert health.verdict is Verdict.BAD
    assert (health.verdict is Verdict.GOOD) == (health.score >= HealthPolicy().bad_below)
    assert all(0 <= p <= 100 for p in health.penalties.values())


# --- the expected interval ----------------------------------------------------------------------


def test_the_first_gap_is_the_expected_interval() -> None:
    # when / then
    assert update_expected_interval(None, 4.0) == 4.0


def test_each_gap_moves_the_expected_interval_by_alpha() -> None:
    # when
    learned = update_expected_interval(10.0, 20.0, alpha=0.25)
    # then
    assert learned == 12.5


def test_an_outage_is_clamped_so_it_does_not_become_the_rhythm() -> None:
    # when: a one-hour outage on a 2s stream
    learned = update_expected_interval(2.0, 3600.0, alpha=0.2, outlier_factor=10.0)
    # then: as if the gap had been 20s
    assert learned == pytest.approx(0.2 * 20 + 0.8 * 2)


def test_the_expected_interval_stays_between_floor_and_ceiling() -> None:
    # when / then
    assert update_expected_interval(None, 0.001, floor_s=0.5) == 0.5
    assert update_expected_interval(None, 10_000, ceiling_s=600) == 600


@pytest.mark.parametrize("gap", [-1.0, math.nan, math.inf])
def test_a_gap_that_is_not_a_duration_is_ignored(gap: float) -> None:
    # when / then
    assert update_expected_interval(3.0, gap) == 3.0
    assert update_expected_interval(None, gap, floor_s=1.0) == 1.0


def test_impossible_learning_parameters_are_refused() -> None:
    # when / then
    with pytest.raises(ValueError):
        update_expected_interval(None, 1.0, alpha=0)
    with pytest.raises(ValueError):
        update_expected_interval(None, 1.0, floor_s=10, ceiling_s=1)


def test_impossible_health_thresholds_are_refused() -> None:
    # when / then
    with pytest.raises(ValueError):
        HealthPolicy(ok_error_rate=0.5, dead_error_rate=0.2)


@given(
    gaps=st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=50),
    alpha=st.floats(0.01, 1),
)
def test_the_learned_interval_always_stays_within_floor_and_ceiling(gaps: list[float], alpha: float) -> None:
    # given
    learned: float | None = None
    # when / then
    for gap in gaps:
        learned = update_expected_interval(learned, gap, alpha=alpha, floor_s=0.5, ceiling_s=900)
        assert 0.5 <= learned <= 900
