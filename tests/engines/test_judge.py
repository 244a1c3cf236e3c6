"""The batched judge and the monitor's claimer: many sources at once, each as the monitor always judged it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from beastflow.redis_client import get_redis, key
from engines.deadlines import IDLE_SPREAD
from engines.dispatch import monitor_claim_pass
from engines.hysteresis import HysteresisState, Phase
from engines.judge import judge_sources, poll_facts
from engines.models import Event, HealthSample, PollRun, Source, StreamState
from engines.modes import Mode
from scheduling.models import SourceSchedule
from tests.conftest import Persona
from tests.factories import make_source

T0 = time.time()


def at(offset: float) -> datetime:
    return datetime.fromtimestamp(T0 + offset, tz=UTC)


@pytest.fixture
def quiet(in_acme: object) -> None:
    SourceSchedule.objects.update(next_eval_at=None, next_poll_at=None, next_reconcile_at=None)
    for name in get_redis().keys(key("monitor", "*")):
        get_redis().delete(name)


def _source(name: str, **config: object) -> Source:
    created, _ = make_source(name, config={"poll_url": "http://127.0.0.1:9/changes", **config})
    Source.objects.filter(pk=created.pk).update(created_at=at(-100))
    return Source.objects.get(pk=created.pk)


def _deadline(source: Source) -> float:
    value = SourceSchedule.objects.get(pk=source.pk).next_eval_at
    assert value is not None
    return value.timestamp()


def test_a_batch_is_judged_in_one_go_and_each_source_gets_its_own_deadline(quiet: None) -> None:
    # given: a quiet source with an hour's rhythm, a stream that just pushed, and one silent past its allowance
    idle = _source("idle", expected_interval_s=3600)
    pushing = _source("pushing", expected_interval_s=5)
    silent = _source("silent", expected_interval_s=1)
    StreamState.objects.filter(source=idle).update(last_push_at=at(-10))
    StreamState.objects.filter(source=pushing).update(last_push_at=at(-1), events_total=7)
    StreamState.objects.filter(source=silent).update(last_push_at=at(-60))
    ids = [idle.pk, pushing.pk, silent.pk]
    judge_sources(list(Source.objects.filter(pk__in=ids)), now=T0)  # the first judgement: every stream counts as moved
    StreamState.objects.filter(source=pushing).update(last_push_at=at(0.5), events_total=9)
    # when
    judged = judge_sources(list(Source.objects.filter(pk__in=ids)), now=T0 + 1)
    # then
    assert {pk: h.verdict.value for pk, h in judged.items()} == {idle.pk: "good", pushing.pk: "good", silent.pk: "bad"}
    # the idle cap (up to IDLE_SPREAD of it early, at random), long before its silence
    assert T0 + 1 + 300 * (1 - IDLE_SPREAD) - 0.5 <= _deadline(idle) <= T0 + 301 + 0.5
    assert _deadline(pushing) == pytest.approx(T0 + 6, abs=0.5)  # it moved: looked at again after active_s
    assert _deadline(silent) == pytest.approx(T0 + 2, abs=0.5)  # bad verdicts being counted: every tick
    assert Source.objects.get(pk=silent.pk).hysteresis_state["bad"] == 2


def test_a_settled_stream_is_judged_at_its_silence_deadline(quiet: None) -> None:
    source = _source("rhythm", expected_interval_s=10)  # 30 s of silence allowed
    StreamState.objects.filter(source=source).update(last_push_at=at(-5))
    judge_sources([source], now=T0)  # the first judgement: the stream counts as moved
    judge_sources([Source.objects.get(pk=source.pk)], now=T0 + 1)
    assert _deadline(source) == pytest.approx(T0 + 25, abs=0.5)


def test_the_claimer_judges_due_sources_across_the_batch_and_leaves_paused_ones_unscheduled(quiet: None) -> None:
    due = [_source(f"due-{n}", expected_interval_s=3600) for n in range(5)]
    paused = _source("paused", expected_interval_s=3600)
    Source.objects.filter(pk=paused.pk).update(paused=True)
    not_yet = _source("not-yet", expected_interval_s=3600)
    past = timezone.now() - timedelta(seconds=3)
    SourceSchedule.objects.filter(pk__in=[s.pk for s in [*due, paused]]).update(next_eval_at=past)
    SourceSchedule.objects.filter(pk=not_yet.pk).update(next_eval_at=timezone.now() + timedelta(hours=1))
    # when: batches of two
    judged = monitor_claim_pass(budget_s=10, batch=2, lease_s=30)
    # then
    assert judged == 5
    for source in due:
        assert Source.objects.get(pk=source.pk).hysteresis_state["good"] == 1
        # its new deadline replaced the claim's 30 s lease (a first judgement: looked at again after active_s)
        assert time.time() < _deadline(source) <= time.time() + 6
    assert SourceSchedule.objects.get(pk=paused.pk).next_eval_at is None
    assert Source.objects.get(pk=not_yet.pk).hysteresis_state == {}


def _hybrid(source: Source, since: float) -> HysteresisState:
    state = HysteresisState(mode=Mode.HYBRID, phase=Phase.RECOVERING, since=since)
    Source.objects.filter(pk=source.pk).update(mode="hybrid", hysteresis_state=state.to_dict())
    return state


def _poll(source: Source, offset: float, *, caught_up: bool = True, missed: int = 0) -> None:
    PollRun.objects.create(
        source=source,
        trigger="schedule",
        status="succeeded",
        started_at=at(offset),
        finished_at=at(offset),
        caught_up=caught_up,
        missed=missed,
    )


def _event(source: Source, n: int, *, origin: str, occurred: float | None, received: float) -> None:
    Event.objects.create(
        source_id=source.pk,
        event_id=f"e{n}",
        type="upsert",
        key=f"k{n}",
        version=1,
        origin=origin,
        occurred_at=None if occurred is None else at(occurred),
        received_at=at(received),
    )


def test_poll_facts_count_what_polls_found_push_missed_per_connector(quiet: None) -> None:
    # given: a feed source and a rest source in hybrid since t=0, and one without polls yet
    feed = _source("feed")
    rest = _source("rest-like")
    Source.objects.filter(pk=rest.pk).update(connector="rest")
    waiting = _source("waiting")
    states = {s.pk: _hybrid(s, T0) for s in (feed, rest, waiting)}
    _poll(feed, -5)  # before the mode began: not counted
    _poll(feed, 1, caught_up=False)
    _poll(feed, 2, caught_up=True)
    _event(feed, 1, origin="poll", occurred=0, received=5)  # push had 5 s: missed
    _event(feed, 2, origin="poll", occurred=4.5, received=5)  # push had 0.5 s: in flight, not missed
    _event(feed, 3, origin="poll", occurred=None, received=5)  # no time: missed
    _event(feed, 4, origin="push", occurred=0, received=5)  # pushed: not a miss
    _event(feed, 5, origin="poll", occurred=-10, received=-5)  # before the mode began
    _poll(rest, 1, missed=2)
    _poll(rest, 2, missed=1)
    sources = {s.pk: Source.objects.get(pk=s.pk) for s in (feed, rest, waiting)}
    # when
    facts = poll_facts([(sources[pk], states[pk]) for pk in sources])
    # then
    caught_up, validation = facts[feed.pk]
    assert caught_up and validation is not None and (validation.polls, validation.missed) == (2, 2)
    caught_up, validation = facts[rest.pk]
    assert caught_up and validation is not None and (validation.polls, validation.missed) == (2, 3)
    assert facts[waiting.pk] == (False, None)


def test_consoles_are_told_only_when_somebody_watches() -> None:
    from django.conf import settings

    from console.live import group_for, watched

    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    name = f"{prefix}:group:{group_for('t_watched_here')}"
    get_redis().zadd(name, {"specific.channel!abc": time.time()})
    try:
        assert watched(["t_watched_here", "t_nobody_here"]) == {"t_watched_here"}
    finally:
        get_redis().delete(name)


def test_one_broken_source_does_not_blind_the_batch(quiet: None) -> None:
    # given: a source whose stored hysteresis config no longer reads (written behind the API's back)
    broken = _source("broken", expected_interval_s=3600)
    fine = _source("fine", expected_interval_s=3600)
    Source.objects.filter(pk=broken.pk).update(hysteresis={"fail_threshold": 0})
    # when
    judged = judge_sources(list(Source.objects.filter(pk__in=[broken.pk, fine.pk])), now=T0)
    # then: the other one is judged and scheduled; the broken one's deadline is left alone (a claim's lease)
    assert list(judged) == [fine.pk]
    assert Source.objects.get(pk=fine.pk).hysteresis_state["good"] == 1
    assert _deadline(fine) > T0  # scheduled after its judgement (T0 is when this module was imported)
    assert _deadline(broken) <= time.time()


def test_one_batch_judges_the_sources_of_several_tenants_in_their_own_schemas(quiet: None, charlie: Persona) -> None:
    # given: due sources in acme (the test's schema) and globex, one batch
    mine = [_source(f"acme-{n}", expected_interval_s=3600) for n in range(3)]
    with tenant_context(charlie.tenant):
        theirs = [_source(f"globex-{n}", expected_interval_s=3600) for n in range(2)]
    past = timezone.now() - timedelta(seconds=2)
    SourceSchedule.objects.filter(pk__in=[s.pk for s in [*mine, *theirs]]).update(next_eval_at=past)
    # when
    judged = monitor_claim_pass(budget_s=10, batch=10, lease_s=30)
    # then: each judged in its own schema, with its own sample and deadline
    assert judged == 5
    for source in mine:
        assert Source.objects.get(pk=source.pk).hysteresis_state["good"] == 1
        assert HealthSample.objects.filter(source_id=source.pk).count() == 1
    with tenant_context(charlie.tenant):
        for source in theirs:
            assert Source.objects.get(pk=source.pk).hysteresis_state["good"] == 1
            assert HealthSample.objects.filter(source_id=source.pk).count() == 1
    assert all(_deadline(s) > time.time() for s in [*mine, *theirs])
    assert get_redis().exists(key("monitor", "t_globex", theirs[0].pk))
