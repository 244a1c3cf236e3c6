"""The monitor wired to the database: signals in, switches and audit rows out."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from django.utils import timezone

from beastflow.redis_client import get_redis, key
from engines.judge import monitor_source
from engines.models import HealthSample, ModeSwitch, PollRun, Source, StreamState
from tests.conftest import Persona
from tests.factories import make_source

T0 = time.time()


def at(offset: float) -> datetime:
    return datetime.fromtimestamp(T0 + offset, tz=UTC)


@pytest.fixture
def source(in_acme: object) -> Source:
    created, _ = make_source(
        "monitored",
        config={"poll_url": "http://127.0.0.1:9/changes", "expected_interval_s": 1.0},
        hysteresis={"fail_threshold": 2, "recover_threshold": 2, "min_dwell_s": 5, "validation_window_s": 3},
    )
    Source.objects.filter(pk=created.pk).update(created_at=at(-100))
    for name in get_redis().keys(key("monitor", "*")) + get_redis().keys(key("gapfill", "*")):
        get_redis().delete(name)
    return Source.objects.get(pk=created.pk)


def pushed(source: Source, offset: float) -> None:
    StreamState.objects.filter(source=source).update(last_push_at=at(offset), last_heartbeat_at=at(offset))


def tick(source: Source, offset: float) -> Source:
    monitor_source(Source.objects.get(pk=source.pk), now=T0 + offset)
    return Source.objects.get(pk=source.pk)


def poll_run(source: Source, offset: float, *, caught_up: bool = True, new_events: int = 0) -> None:
    PollRun.objects.create(
        source=source,
        trigger="schedule",
        status="succeeded",
        started_at=at(offset),
        finished_at=at(offset),
        caught_up=caught_up,
        new_events=new_events,
    )


def test_a_healthy_stream_stays_in_event_mode(source: Source) -> None:
    for second in range(5):
        pushed(source, second)
        assert tick(source, second + 0.5).mode == "event"
    assert not ModeSwitch.objects.filter(source=source).exists()


def test_a_silent_stream_degrades_to_hybrid_with_an_audit_row(source: Source) -> None:
    # given: pushes stopped at t=0
    pushed(source, 0)
    # when: the monitor ticks through the silence
    modes = [tick(source, second).mode for second in range(1, 20)]
    # then
    assert modes[0] == "event" and modes[-1] == "hybrid"
    switch = ModeSwitch.objects.get(source=source)
    assert (switch.from_mode, switch.to_mode, switch.transition) == ("event", "hybrid", "degrade")
    assert "bad verdicts" in switch.reason
    assert switch.signals["health"]["verdict"] == "bad"
    assert switch.signals["health"]["penalties"]["silence"] > 0
    assert Source.objects.get(pk=source.pk).next_poll_at is not None  # polling starts at once


def test_the_whole_round_trip_event_hybrid_polling_hybrid_event(source: Source) -> None:
    # degrade
    pushed(source, 0)
    second = 1
    while tick(source, second).mode == "event":
        second += 1
    # caught up -> polling
    poll_run(source, second + 0.5)
    assert tick(source, second + 1).mode == "polling"
    # pushes come back, dwell passes -> hybrid (recovering)
    second += 2
    while (current := tick(source, second)).mode == "polling":
        pushed(source, second)
        second += 1
        assert second < 60, "never left polling"
    assert current.mode == "hybrid"
    recovering_since = second
    # validation window with a clean poll -> event
    for offset in range(1, 6):
        pushed(source, recovering_since + offset)
        poll_run(source, recovering_since + offset - 0.5)
        current = tick(source, recovering_since + offset)
    assert current.mode == "event"
    switches = list(ModeSwitch.objects.filter(source=source).order_by("at", "id"))
    assert [(s.from_mode, s.to_mode) for s in switches] == [
        ("event", "hybrid"),
        ("hybrid", "polling"),
        ("polling", "hybrid"),
        ("hybrid", "event"),
    ]
    assert switches[0].validated is True  # the degrade's polls caught up
    assert switches[2].validated is True  # the recovery validated
    assert HealthSample.objects.filter(source=source).count() >= 4


def test_a_paused_source_is_not_judged(alice: Persona, source: Source) -> None:
    from engines.judge import monitor_tenant

    Source.objects.filter(pk=source.pk).update(paused=True)
    assert monitor_tenant() == 0


def test_the_health_endpoint_reports_the_monitors_judgement(alice: Persona, source: Source) -> None:
    pushed(source, 0)
    for second in range(1, 12):
        tick(source, second)
    body = alice.client().get(f"/api/v1/sources/{source.pk}/health").json()
    assert body["mode"] == "hybrid"
    assert 0 <= body["health_score"] < 50
    assert body["verdict"] == "bad"
    switches = alice.client().get(f"/api/v1/sources/{source.pk}/mode-switches").json()["results"]
    assert switches[0]["to_mode"] == "hybrid" and switches[0]["signals"]["health"]["verdict"] == "bad"


def test_another_tenant_cannot_read_health_or_switches(charlie: Persona, source: Source) -> None:
    assert charlie.client().get(f"/api/v1/sources/{source.pk}/health").status_code == 404
    assert charlie.client().get(f"/api/v1/sources/{source.pk}/mode-switches").status_code == 404


def to_polling(source: Source) -> float:
    """Silence, degrade, a poll that caught up: the source in polling. Returns the second it got there."""
    pushed(source, 0)
    second = 1
    while tick(source, second).mode == "event":
        second += 1
    poll_run(source, second + 0.5)
    assert tick(source, second + 1).mode == "polling"
    return second + 1


def test_a_push_that_comes_and_goes_in_polling_is_a_flapping_failure_without_a_switch(source: Source) -> None:
    from healing.models import FailureRecord

    # given: in polling; the push comes back for one tick (fewer than recover_threshold) and goes quiet again
    second = to_polling(source)
    switches_before = ModeSwitch.objects.filter(source=source).count()
    policy_k = 4  # flap_switches, the default
    # when
    for _ in range(policy_k):
        second += 1
        pushed(source, second)
        assert tick(source, second + 0.5).verdict == "good"
        second += 12  # past the silence allowance and its dead factor
        assert tick(source, second).verdict == "bad"
    # then: flapping, held in polling, no switch
    current = Source.objects.get(pk=source.pk)
    assert current.mode == "polling"
    assert ModeSwitch.objects.filter(source=source).count() == switches_before
    failure = FailureRecord.objects.get(source=source, kind="flapping")
    assert len(failure.detail["silences"]) == policy_k
    assert "the push went quiet again 4 times" in failure.detail["reason"]
    assert current.hysteresis_state["strikes"] == 1


def test_a_hold_written_while_the_monitor_ticked_is_not_overwritten(source: Source) -> None:
    # given: in polling; the monitor has read the source when a healing action holds it for an hour
    second = to_polling(source)
    read_by_monitor = Source.objects.get(pk=source.pk)
    held = {**read_by_monitor.hysteresis_state, "hold_until": T0 + 3600}
    Source.objects.filter(pk=source.pk).update(hysteresis_state=held)
    # when: that tick writes, and later ones see a healthy push
    pushed(source, second + 1)
    monitor_source(read_by_monitor, now=T0 + second + 1.5)
    # then: the hold survived the stale write
    assert Source.objects.get(pk=source.pk).hysteresis_state["hold_until"] == T0 + 3600
    for offset in range(2, 12):
        pushed(source, second + offset)
        assert tick(source, second + offset + 0.5).mode == "polling"


def test_a_gap_that_polls_cannot_fill_is_asked_for_less_and_less_often(source: Source) -> None:
    from beastflow.tenancy import current_schema
    from engines.monitor import GAP_FILL_MAX_COOLDOWN_S, _maybe_gap_fill, gap_fill_cooldown_s, gap_fills_take

    schema = current_schema()
    lock = key("gapfill", schema, source.pk)
    # given: seqs 11 and 12 never arrived, 13 did, and no poll brings them (the upstream lacks them too)
    StreamState.objects.filter(source=source).update(contiguous_seq=10, highest_seq=13)
    stream = StreamState.objects.get(source=source)
    cooldowns, asks = [], []
    for _ in range(4):
        _maybe_gap_fill(source, stream)
        _maybe_gap_fill(source, stream)  # within the cooldown: nothing more
        asks.append(gap_fills_take(schema, [source.pk]))  # what the polls dispatcher takes
        cooldowns.append(get_redis().ttl(lock))
        get_redis().delete(lock)  # the cooldown ran out
    # then: one ask per cooldown, each cooldown twice the last
    assert asks == [{source.pk}] * 4
    assert cooldowns == [gap_fill_cooldown_s(n) for n in range(4)] == [5, 10, 20, 40]
    # a new gap starts again from the shortest wait; the cap holds for the stubborn ones
    StreamState.objects.filter(source=source).update(contiguous_seq=13, highest_seq=15)
    _maybe_gap_fill(source, StreamState.objects.get(source=source))
    assert get_redis().ttl(lock) == 5
    assert gap_fill_cooldown_s(50) == GAP_FILL_MAX_COOLDOWN_S


def test_a_gap_fill_is_asked_of_the_polls_dispatcher_not_sent(source: Source, monkeypatch: pytest.MonkeyPatch) -> None:
    from beastflow.tenancy import current_schema
    from engines import source_ops
    from engines.monitor import _maybe_gap_fill, gap_fills_take
    from scheduling.models import SourceSchedule

    sent: list[int] = []
    monkeypatch.setattr(source_ops, "request_poll", lambda source_id, *_, **__: sent.append(source_id))
    SourceSchedule.objects.filter(pk=source.pk).update(next_poll_at=None)  # event mode: no poll schedule
    StreamState.objects.filter(source=source).update(contiguous_seq=10, highest_seq=12)
    # when
    _maybe_gap_fill(source, StreamState.objects.get(source=source))
    # then: no poll queued by the monitor; the source's poll is due, for the dispatcher to send within its room
    assert sent == []
    due = SourceSchedule.objects.get(pk=source.pk).next_poll_at
    assert due is not None and due <= timezone.now()
    # the ask is taken once; a source nobody asked for is not taken
    other, _ = make_source("not-asked")
    assert gap_fills_take(current_schema(), [source.pk, other.pk]) == {source.pk}
    assert gap_fills_take(current_schema(), [source.pk]) == set()
