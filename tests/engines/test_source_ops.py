"""The operations on a source every room goes through (engines/source_ops.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from engines import source_ops, sources
from engines.judge import monitor_source
from engines.models import ModeSwitch, PollTrigger, Source, StreamState
from engines.modes import Mode
from scheduling.models import SourceSchedule
from tests.factories import make_source

pytestmark = pytest.mark.usefixtures("in_acme")

Capture = Callable[..., AbstractContextManager[list[Callable[[], Any]]]]


class FakeTask:
    """Stands in for engines.tasks.source_poll_task: records what would have been queued."""

    def __init__(self) -> None:
        self.sent: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def delay(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("polls are queued with apply_async")

    def apply_async(self, *args: Any, **kwargs: Any) -> None:
        self.sent.append((kwargs.pop("args"), kwargs))


@pytest.fixture
def poll_task(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTask]:
    from engines import sending

    fake = FakeTask()
    monkeypatch.setitem(sending._tasks, "poll", fake)
    yield fake


@pytest.fixture
def source() -> Source:
    created, _ = make_source("ops")
    return created


def test_a_poll_requested_in_a_transaction_is_queued_once_it_commits_in_the_tenant_schema(
    source: Source, poll_task: FakeTask, django_capture_on_commit_callbacks: Capture
) -> None:
    # given
    schema = connection.schema_name
    # when
    with django_capture_on_commit_callbacks(execute=True):
        source_ops.request_poll(source.pk, PollTrigger.MANUAL, countdown=4.0)
        assert poll_task.sent == []  # not before the commit
    # then: the schema is the caller's, whatever the connection's when the commit comes
    assert poll_task.sent == [((source.pk, "manual"), {"countdown": 4.0, "headers": {"_schema_name": schema}})]


def test_a_poll_requested_at_once_is_queued_inside_the_transaction(source: Source, poll_task: FakeTask) -> None:
    expires = timezone.now() + timedelta(seconds=30)
    source_ops.request_poll(source.pk, "gap_fill", expires=expires, at_once=True)
    headers = {"_schema_name": connection.schema_name}
    assert poll_task.sent == [((source.pk, "gap_fill"), {"expires": expires, "headers": headers})]


def test_an_unknown_poll_trigger_is_refused_before_anything_is_queued(source: Source, poll_task: FakeTask) -> None:
    with pytest.raises(ValueError):
        source_ops.request_poll(source.pk, "whenever", at_once=True)
    assert poll_task.sent == []


def test_pause_and_resume_compare_and_set_the_flag_and_make_the_source_due(source: Source) -> None:
    # given: nothing due for a while
    later = timezone.now() + timedelta(hours=1)
    SourceSchedule.objects.filter(pk=source.pk).update(next_eval_at=later, next_poll_at=later, next_reconcile_at=later)
    before = Source.objects.get(pk=source.pk).updated_at
    # when
    paused, again = source_ops.pause(source), source_ops.pause(Source.objects.get(pk=source.pk))
    # then: one pause, an operator's edit, and every engine looks at the source now
    row = Source.objects.get(pk=source.pk)
    schedule = SourceSchedule.objects.get(pk=source.pk)
    assert (paused, again, row.paused, source.paused) == (True, False, True, True)
    assert row.updated_at > before
    assert max(schedule.next_eval_at, schedule.next_reconcile_at) < later
    # and: resumed once, not twice
    assert (source_ops.resume(source), source_ops.resume(source)) == (True, False)
    assert not Source.objects.get(pk=source.pk).paused


def test_pause_and_resume_make_the_poll_due_only_for_a_source_polled_in_its_mode(source: Source) -> None:
    # given: one source in event mode (its events carry seqs: no audit polls) and one in polling, nothing due
    polled, _ = make_source("ops-polled")
    Source.objects.filter(pk=polled.pk).update(mode=Mode.POLLING.value)
    later = timezone.now() + timedelta(hours=1)
    SourceSchedule.objects.filter(pk__in=[source.pk, polled.pk]).update(next_eval_at=later, next_poll_at=later)
    # when
    for each in (source, Source.objects.get(pk=polled.pk)):
        source_ops.pause(each)
        source_ops.resume(each)
    # then: both judged now; only the polled one's poll is due (a visit to the other would find nothing)
    schedules = {s.pk: s for s in SourceSchedule.objects.filter(pk__in=[source.pk, polled.pk])}
    assert schedules[source.pk].next_eval_at < later and schedules[polled.pk].next_eval_at < later
    assert schedules[source.pk].next_poll_at == later
    assert schedules[polled.pk].next_poll_at < later


def test_a_resumed_source_is_judged_silent_from_its_resume_not_from_its_last_push_before_the_pause(
    source: Source,
) -> None:
    # given: a stream with a 10 s rhythm (30 s of silence allowed) that last pushed ten minutes ago, then was
    # paused; a twin never paused
    twin, _ = make_source("ops-twin", config={"poll_url": "http://127.0.0.1:9/changes", "expected_interval_s": 10})
    Source.objects.filter(pk=source.pk).update(config={**source.config, "expected_interval_s": 10})
    long_ago = timezone.now() - timedelta(minutes=10)
    Source.objects.filter(pk__in=[source.pk, twin.pk]).update(created_at=long_ago - timedelta(hours=1))
    StreamState.objects.filter(source_id__in=[source.pk, twin.pk]).update(last_push_at=long_ago)
    source_ops.pause(Source.objects.get(pk=source.pk))
    # when: resumed, and both judged
    assert source_ops.resume(Source.objects.get(pk=source.pk))
    resumed_at = Source.objects.get(pk=source.pk).resumed_at
    health = {s.pk: monitor_source(s) for s in Source.objects.filter(pk__in=[source.pk, twin.pk])}
    # then: the silence while paused was nobody's to judge; the twin's is ten minutes
    assert resumed_at is not None and timezone.now() - resumed_at < timedelta(seconds=10)
    assert health[source.pk].measures["silence_s"] < 10 and health[source.pk].penalties["silence"] == 0
    assert "since it was resumed" in health[source.pk].reasons["silence"]
    assert health[twin.pk].measures["silence_s"] > 590 and health[twin.pk].verdict.value == "bad"


def test_healings_own_pause_and_parameters_are_not_an_operators_edit(source: Source) -> None:
    # given
    before = Source.objects.get(pk=source.pk).updated_at
    # when
    source_ops.pause(source, edit=False)
    source_ops.parameters_set(source, {"poll": {**source.poll, "min_interval_s": 8.0}}, edit=False)
    # then: RCA would not read a config change (healing/rca/context.py reads updated_at)
    row = Source.objects.get(pk=source.pk)
    assert (row.paused, row.poll["min_interval_s"], row.updated_at) == (True, 8.0, before)


def test_parameters_set_writes_only_the_policy_parameters(source: Source) -> None:
    with pytest.raises(ValueError, match="mode"):
        source_ops.parameters_set(source, {"mode": "polling"}, edit=True)
    assert Source.objects.get(pk=source.pk).mode == Mode.EVENT.value


def test_forcing_the_mode_a_source_is_in_writes_nothing(source: Source) -> None:
    # when
    forced = source_ops.force_mode(source, to=Mode.EVENT, actor="alice", reason="why not", signals={})
    # then
    assert forced.decision.switch_to is None and not forced.switched
    assert Source.objects.get(pk=source.pk).hysteresis_state == source.hysteresis_state
    assert not ModeSwitch.objects.filter(source=source).exists()


def test_a_forced_mode_is_decided_from_the_row_under_the_lock_and_recorded_with_its_evidence(source: Source) -> None:
    # given: the caller's object is stale, the row moved to polling meanwhile
    stale = Source.objects.get(pk=source.pk)
    source_ops.force_mode(source, to=Mode.POLLING, actor="bob", reason="first", signals={})
    # when
    forced = source_ops.force_mode(
        stale, to=Mode.HYBRID, actor="alice", reason="second", signals={"operator": "alice"}, with_health=True
    )
    # then
    switch = ModeSwitch.objects.filter(source=source).latest("at", "id")
    assert (forced.from_mode, forced.switched) == ("polling", True)
    assert (switch.from_mode, switch.to_mode) == ("polling", "hybrid")
    assert switch.actor == "alice" and switch.signals["operator"] == "alice"
    assert switch.signals["health"]["mode"] == "polling"  # read under the lock, before the switch


def test_a_rotated_webhook_secret_replaces_the_stored_one(source: Source) -> None:
    old = sources.webhook_secret(source)
    new = source_ops.webhook_secret_rotate(source)
    assert new != old and new.startswith(source_ops.WEBHOOK_SECRET_PREFIX)
    assert sources.webhook_secret(Source.objects.get(pk=source.pk)) == new == sources.webhook_secret(source)


def test_a_patch_from_a_stale_copy_keeps_what_the_monitor_healing_and_strategies_wrote_meanwhile(
    source: Source,
) -> None:
    # given: the request loaded the source, then the row moved on before the save
    stale = Source.objects.get(pk=source.pk)
    source_ops.force_mode(source, to=Mode.POLLING, actor="", reason="degraded", signals={})
    source_ops.hold_in_polling(source, hold_s=600.0, actor="healing", reason="held", signals={})
    source_ops.parameters_set(source, {"hysteresis": {**source.hysteresis, "min_dwell_s": 90.0}}, edit=False)
    Source.objects.filter(pk=source.pk).update(health_score=12, verdict="bad")  # the monitor's last judgement
    moved = Source.objects.get(pk=source.pk)
    # when: a PATCH of its name and config, from the stale copy
    config = {**stale.config, "timeout_s": 7.0}
    updated = sources.source_update(source=stale, changes={"name": "ops-renamed", "config": config})
    # then: the PATCH landed, and nothing it did not name was undone
    row = Source.objects.get(pk=source.pk)
    assert (row.name, row.config["timeout_s"]) == ("ops-renamed", 7.0)
    kept = ("mode", "mode_since", "hysteresis_state", "hysteresis", "health_score", "verdict", "next_poll_at")
    assert {name: getattr(row, name) for name in kept} == {name: getattr(moved, name) for name in kept}
    assert row.mode == Mode.POLLING.value and row.hysteresis_state["hold_until"] > time.time() + 500
    # and: the caller's copy is the row now (the API renders it)
    assert updated is stale and (stale.mode, stale.name, stale.hysteresis) == ("polling", "ops-renamed", row.hysteresis)


@pytest.mark.parametrize("through", ["api", "console"])
def test_pausing_through_the_api_does_what_pausing_from_the_console_does(
    source: Source, through: str, alice: Any, django_capture_on_commit_callbacks: Capture
) -> None:
    from django_tenants.utils import tenant_context

    from console.services import source_pause, source_resume
    from engines.ingest.service import source_cache

    schema = connection.schema_name

    def quiet() -> datetime:
        # nothing due for an hour, and the source's facts cached by the ingest path
        later = timezone.now() + timedelta(hours=1)
        SourceSchedule.objects.filter(pk=source.pk).update(
            next_eval_at=later, next_poll_at=later, next_reconcile_at=later
        )
        source_cache.get(schema, source.pk, lambda: None)
        return later

    def flip(paused: bool) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            if through == "api":
                answer = alice.client().patch(f"/api/v1/sources/{source.pk}", {"paused": paused}, format="json")
                assert answer.status_code == 200 and answer.json()["paused"] is paused
                return
            with tenant_context(alice.tenant):
                action = source_pause if paused else source_resume
                action(source=Source.objects.get(pk=source.pk), actor="alice", reason="maintenance")

    def forgotten() -> bool:
        loads: list[int] = []
        source_cache.get(schema, source.pk, lambda: loads.append(1))  # type: ignore[func-returns-value]
        return loads == [1]

    for paused in (True, False):
        # given (the API's request leaves the connection in the public schema: tenant_context after it)
        with tenant_context(alice.tenant):
            later, before = quiet(), Source.objects.get(pk=source.pk).updated_at
        # when
        flip(paused)
        # then: flag set, an operator's edit, every engine it has in its mode looks at it now (an event-mode
        # source whose events carry seqs is not polled on a schedule), the cached facts forgotten
        with tenant_context(alice.tenant):
            row = Source.objects.get(pk=source.pk)
            schedule = SourceSchedule.objects.get(pk=source.pk)
            assert row.paused is paused and row.updated_at > before
            assert max(schedule.next_eval_at, schedule.next_reconcile_at) < later
            assert schedule.next_poll_at == later
            assert forgotten()
