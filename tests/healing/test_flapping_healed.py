"""What "healed" means for flapping: contained in polling, then back on push and staying there.

The hysteresis holds a flapping source in polling (by design, up to a flap
window); only event mode proves a push-stream failure over. So the flapping
failure closes after the source came back to event mode and stayed there,
with no hole in its seqs, and the healing actions taken meanwhile are
judged after the hold, not at a window the hold made impossible to meet.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from engines.hysteresis import HysteresisPolicy, HysteresisState, Phase
from engines.models import ModeSwitch, Source, StreamState
from engines.modes import Mode
from healing.actions import HOLD_S, hold_in_polling
from healing.healer import AUTOMATIC, DEFER_SLACK_S, action_execute, actions_verify
from healing.models import FailureRecord, FailureStatus, HealingAction, HealingEventKind, HealingStatus
from healing.recovery import STREAM_QUIET_S, failures_resolve_recovered
from healing.services import failure_report, stream_gap_report
from tests.factories import make_source

pytestmark = pytest.mark.usefixtures("in_acme")
POLICY = HysteresisPolicy()  # the defaults: a 300 s flap window, 30 s validation


def _held_source(*, hold_s: float, mode: Mode = Mode.POLLING) -> Source:
    """A source the hysteresis holds in `mode` for `hold_s` more seconds, its push verdict good again."""
    source, _ = make_source(f"flap-{uuid.uuid4().hex[:6]}")
    now = time.time()
    state = replace(HysteresisState.initial(now=now - 60, mode=Mode.POLLING), hold_until=now + hold_s, strikes=2)
    Source.objects.filter(pk=source.pk).update(
        mode=mode.value, mode_since=timezone.now(), verdict="good", hysteresis_state=state.to_dict()
    )
    source.refresh_from_db()
    return source


def _seqs(source: Source, *, contiguous: int, highest: int) -> None:
    StreamState.objects.filter(source=source).update(
        contiguous_seq=contiguous, highest_seq=highest, upstream_seq=highest
    )


def _flapping(source: Source) -> FailureRecord:
    record = failure_report(kind="flapping", source_id=source.pk, detail={"reason": "flapping: 4 switches"})
    assert record is not None
    return record


def _back_in_event(source: Source, *, at: datetime) -> None:
    """The monitor's way back after the hold: polling -> hybrid (recover) -> event (validated)."""
    for to_mode, transition, offset in (("hybrid", "recover", 0), ("event", "validated", 3)):
        ModeSwitch.objects.create(
            source=source, from_mode=source.mode, to_mode=to_mode, transition=transition, reason="test",
            at=at + timedelta(seconds=offset),
        )  # fmt: skip
        source.mode = to_mode
    Source.objects.filter(pk=source.pk).update(mode="event", mode_since=at + timedelta(seconds=3), verdict="good")


def _run(action: HealingAction) -> HealingAction:
    action_execute(action, actor=AUTOMATIC, features={})
    action.refresh_from_db()
    assert action.status == HealingStatus.RUNNING
    return action


def _action(failure: FailureRecord, strategy: str, category: str) -> HealingAction:
    now = timezone.now()
    action = HealingAction.objects.create(
        source_id=failure.source_id, failure=failure, category=category, strategy=strategy, risk="low",
        status=HealingStatus.APPROVED, requested_at=now, decided_by=AUTOMATIC, decided_at=now,
    )  # fmt: skip
    return _run(action)


def test_a_quiet_flapping_failure_stays_open_while_its_source_is_held_in_polling() -> None:
    # given: the last flap long ago, push healthy again, but the hold keeps the source in polling
    source = _held_source(hold_s=200)
    failure = _flapping(source)
    _seqs(source, contiguous=100, highest=100)
    # when
    closed = failures_resolve_recovered(now=timezone.now() + timedelta(seconds=120))
    # then: containment is not the end of it: the source has not shown it stays on push
    failure.refresh_from_db()
    assert closed == 0 and failure.status == FailureStatus.OPEN


def test_a_flapping_failure_closes_once_the_source_stayed_in_event_mode_with_no_hole() -> None:
    # given: held, then back in event mode through a validated recovery, seqs whole
    source = _held_source(hold_s=0)
    failure = _flapping(source)
    _seqs(source, contiguous=250, highest=250)
    back = timezone.now() + timedelta(seconds=40)
    _back_in_event(source, at=back)
    stable = timedelta(seconds=STREAM_QUIET_S["flapping"])
    # when: just back (the last flap itself is long quiet by then)
    failures_resolve_recovered(now=back + timedelta(seconds=3) + stable - timedelta(seconds=1))
    # then: not yet: it must stay in event mode for the quiet time
    failure.refresh_from_db()
    assert failure.status == FailureStatus.OPEN
    # when: it stayed
    failures_resolve_recovered(now=back + timedelta(seconds=3) + stable + timedelta(seconds=1))
    # then: closed, with what it was closed on
    failure.refresh_from_db()
    assert (failure.status, failure.resolved_by) == (FailureStatus.RESOLVED, "recovered")
    resolution = failure.detail["resolution"]
    assert resolution["switches_since_flap"] == 2
    assert resolution["path_back"] == ["hybrid:recover", "event:validated"]
    assert resolution["held_in_polling_s"] == pytest.approx(40, abs=1)
    assert resolution["seq"] == {"contiguous": 250, "highest": 250, "upstream": 250}
    assert resolution["in_event_s"] == pytest.approx(STREAM_QUIET_S["flapping"] + 1, abs=0.5)


def test_a_flapping_failure_stays_open_while_a_hole_in_the_seqs_is_open() -> None:
    # given: back in event mode and stable, but seqs above the watermark arrived before the ones below
    source = _held_source(hold_s=0)
    failure = _flapping(source)
    _seqs(source, contiguous=240, highest=250)
    back = timezone.now()
    _back_in_event(source, at=back)
    # when
    failures_resolve_recovered(now=back + timedelta(seconds=120))
    # then: data is not whole yet
    failure.refresh_from_db()
    assert failure.status == FailureStatus.OPEN


def _gap(source: Source) -> FailureRecord:
    stream_gap_report(source_id=source.pk, after_seq=10, missing=3, signals={"contiguous_seq": 10})
    return FailureRecord.objects.get(source=source, kind="stream_gaps")


def test_a_stream_failure_is_judged_after_the_flap_hold_not_at_a_window_the_hold_made_impossible() -> None:
    # given: a gap-fill poll (a 60 s window) on a source the flap hold keeps in polling for 250 s
    source = _held_source(hold_s=250)
    failure = _gap(source)
    action = _action(failure, "gap_fill_poll", "stream_gaps")
    assert action.verify_deadline is not None
    window_end = action.verify_deadline
    # when: the window ends with the source still held
    judged = actions_verify(now=window_end + timedelta(seconds=1))
    # then: not judged; deferred to when the policy lets it back on push, and said so
    action.refresh_from_db()
    state = HysteresisState.from_dict(source.hysteresis_state)
    allowed = datetime.fromtimestamp(state.hold_until + POLICY.validation_window_s, tz=UTC)
    expected = allowed + timedelta(seconds=STREAM_QUIET_S["stream_gaps"] + DEFER_SLACK_S)
    assert judged == 0 and action.status == HealingStatus.RUNNING
    assert action.verify_deadline is not None
    assert abs((action.verify_deadline - expected).total_seconds()) < 0.01
    deferred = action.events.get(kind=HealingEventKind.DEFERRED)
    assert "held in polling" in deferred.note
    # when: after the hold the source came back, the gap filled, and the sweep closed the failure
    _seqs(source, contiguous=300, highest=300)
    back = datetime.fromtimestamp(state.hold_until, tz=UTC) + timedelta(seconds=1)
    _back_in_event(source, at=back)
    later = back + timedelta(seconds=3 + STREAM_QUIET_S["stream_gaps"] + 2)
    failures_resolve_recovered(now=later)
    actions_verify(now=later)
    # then: the strategy succeeded, with the facts it was judged on
    action.refresh_from_db()
    assert action.status == HealingStatus.SUCCEEDED
    assert action.outcome is not None and action.outcome["resolution"]["seq"]["contiguous"] == 300


@pytest.mark.parametrize(
    ("hold_s", "why"),
    [
        (-3600, "the hold ended long ago: the stream, not the policy, keeps the source in polling"),
        (3600, "held for longer than one whole hold past the window: it keeps flapping"),
    ],
)
def test_a_stream_failure_is_judged_at_its_window_when_the_policy_does_not_explain_the_wait(
    hold_s: float, why: str
) -> None:
    # given
    source = _held_source(hold_s=hold_s)
    failure = _gap(source)
    action = _action(failure, "gap_fill_poll", "stream_gaps")
    assert action.verify_deadline is not None
    # when
    actions_verify(now=action.verify_deadline + timedelta(seconds=1))
    # then: a failed attempt, back in the queue for the next strategy
    action.refresh_from_db()
    failure.refresh_from_db()
    assert action.status == HealingStatus.FAILED, why
    assert not action.events.filter(kind=HealingEventKind.DEFERRED).exists()
    assert failure.attempts == 1 and failure.analysis_due


def test_hold_in_polling_for_a_flapping_source_succeeds_when_it_is_back_on_push_after_the_hold() -> None:
    # given: flapping, held by the hysteresis for 280 s; hold_in_polling (a 300 s window) runs at once
    source = _held_source(hold_s=280)
    failure = _flapping(source)
    _seqs(source, contiguous=500, highest=500)
    action = _action(failure, "hold_in_polling", "flapping")
    assert action.verify_deadline is not None
    state = HysteresisState.from_dict(Source.objects.get(pk=source.pk).hysteresis_state)
    # when: the window ends while the source validates its way back (hybrid, recovering)
    back = datetime.fromtimestamp(state.hold_until, tz=UTC) + timedelta(seconds=1)
    recovering = replace(state, mode=Mode.HYBRID, phase=Phase.RECOVERING, since=back.timestamp())
    Source.objects.filter(pk=source.pk).update(mode="hybrid", hysteresis_state=recovering.to_dict())
    actions_verify(now=max(action.verify_deadline, back) + timedelta(seconds=1))
    # then: deferred past the validation window and the flapping quiet time
    action.refresh_from_db()
    assert action.status == HealingStatus.RUNNING
    assert action.verify_deadline >= back + timedelta(seconds=POLICY.validation_window_s + STREAM_QUIET_S["flapping"])
    # when: back in event mode and stable
    _back_in_event(Source.objects.get(pk=source.pk), at=back)
    later = back + timedelta(seconds=3 + STREAM_QUIET_S["flapping"] + 1)
    failures_resolve_recovered(now=later)
    actions_verify(now=later)
    # then
    action.refresh_from_db()
    failure.refresh_from_db()
    assert failure.status == FailureStatus.RESOLVED
    assert action.status == HealingStatus.SUCCEEDED
    assert action.outcome is not None and action.outcome["resolution"]["switches_since_flap"] == 2


def test_hold_in_polling_acts_on_the_source_as_it_is_now_not_as_it_was_when_chosen() -> None:
    # given: chosen while the source was in polling; by the time it runs the monitor moved it to hybrid
    source = _held_source(hold_s=0)
    failure = _flapping(source)
    stale = Source.objects.get(pk=source.pk)
    recovering = replace(
        HysteresisState.from_dict(stale.hysteresis_state), mode=Mode.HYBRID, phase=Phase.RECOVERING, since=time.time()
    )
    Source.objects.filter(pk=source.pk).update(mode="hybrid", hysteresis_state=recovering.to_dict())
    # when
    action = HealingAction(pk=0, failure=failure, strategy="hold_in_polling")
    effect = hold_in_polling(action, stale, {})
    # then: back in polling, held, and the effect says what landed
    current = Source.objects.get(pk=source.pk)
    state = HysteresisState.from_dict(current.hysteresis_state)
    assert current.mode == "polling" and effect["switched"] is True and effect["from_mode"] == "hybrid"
    assert state.hold_until >= time.time() + HOLD_S - 5
    assert state.switches[-1] == pytest.approx(time.time(), abs=5)  # a forced switch, counted towards flapping
    switch = ModeSwitch.objects.filter(source=source).latest("at")
    assert (switch.from_mode, switch.to_mode, switch.transition) == ("hybrid", "polling", "forced")


def test_hold_in_polling_lets_a_degrading_source_reach_polling_and_holds_it_there() -> None:
    # given: a source on its way down, its polls not caught up yet
    source, _ = make_source(f"flap-{uuid.uuid4().hex[:6]}")
    now = time.time()
    degrading = HysteresisState(mode=Mode.HYBRID, phase=Phase.DEGRADING, since=now, quiet_since=now, switches=(now,))
    Source.objects.filter(pk=source.pk).update(mode="hybrid", hysteresis_state=degrading.to_dict())
    # when
    effect = hold_in_polling(HealingAction(pk=0, strategy="hold_in_polling"), source, {})
    # then: no switch (the machine goes on once its polls caught up), the hold stored for it to keep
    current = Source.objects.get(pk=source.pk)
    assert current.mode == "hybrid" and effect["switched"] is False
    assert HysteresisState.from_dict(current.hysteresis_state).hold_until >= now + HOLD_S
