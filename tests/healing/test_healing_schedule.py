"""When a tenant next needs a healing pass: soon while something can happen, else at its next due time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from engines.models import Source
from healing import tasks as healing_tasks
from healing.models import FailureRecord, FailureStatus, HealingAction, HealingStatus
from healing.queue import UNSETTLED_ACTIONS, healing_has_work, healing_next_due
from healing.recovery import STREAM_QUIET_S, quiet_s
from scheduling.models import TenantSchedule
from tests.factories import make_source

pytestmark = pytest.mark.usefixtures("in_acme")
TICK, IDLE = 2.0, 300.0


@pytest.fixture
def clean() -> None:
    HealingAction.objects.all().delete()
    FailureRecord.objects.all().delete()


def _failure(source: Source, **fields: object) -> FailureRecord:
    now = timezone.now()
    defaults: dict[str, object] = {"kind": "stream_silent", "fingerprint": f"f-{source.pk}", "first_seen": now}
    return FailureRecord.objects.create(source=source, last_seen=now, **{**defaults, **fields})


def _next(now: object) -> float:
    return (healing_next_due(now=now, tick_s=TICK, idle_s=IDLE) - now).total_seconds()  # type: ignore[operator]


def test_nothing_open_waits_the_idle_period(clean: None) -> None:
    assert _next(timezone.now()) == pytest.approx(IDLE)


def test_a_failure_to_analyse_is_soon(clean: None) -> None:
    _failure(make_source("new-failure")[0], analysis_due=True)
    assert _next(timezone.now()) == pytest.approx(TICK)


def test_an_open_failure_on_a_source_still_in_polling_waits_for_a_wake(clean: None) -> None:
    source = make_source("still-polling")[0]
    Source.objects.filter(pk=source.pk).update(mode="polling", verdict="bad")
    _failure(source, analysis_due=False)
    assert _next(timezone.now()) == pytest.approx(IDLE)
    # back on push with a good verdict: a pass when the recovery sweep may close it, not every tick before
    Source.objects.filter(pk=source.pk).update(mode="event", verdict="good")
    failure = FailureRecord.objects.get(source=source)
    assert _next(failure.last_seen) == pytest.approx(quiet_s(failure))
    # a close that is overdue (a hole kept it open) is looked at every tick
    assert _next(failure.last_seen + timedelta(seconds=quiet_s(failure) + 30)) == pytest.approx(TICK)


def test_of_several_recovering_failures_the_first_to_close_decides(clean: None) -> None:
    quick, slow = make_source("recovering-quick")[0], make_source("recovering-slow")[0]
    Source.objects.filter(pk__in=[quick.pk, slow.pk]).update(mode="event", verdict="good")
    seen = _failure(slow, kind="stream_silent", analysis_due=False).last_seen  # quiet 10 s
    gaps = _failure(quick, kind="stream_gaps", analysis_due=False)  # quiet 5 s
    FailureRecord.objects.filter(pk=gaps.pk).update(last_seen=seen)
    assert _next(seen) == pytest.approx(STREAM_QUIET_S["stream_gaps"])


def test_a_running_action_is_looked_at_when_its_verification_opens_or_closes(clean: None) -> None:
    now = timezone.now()
    source = make_source("verifying")[0]
    Source.objects.filter(pk=source.pk).update(mode="polling")
    failure = _failure(source, analysis_due=False)
    action = HealingAction.objects.create(
        source=source,
        strategy="keep_polling",
        risk="low",
        status=HealingStatus.RUNNING,
        requested_at=now,
        failure=failure,
        verify_after=now + timedelta(seconds=40),
        verify_deadline=now + timedelta(seconds=120),
    )
    assert _next(now) == pytest.approx(40)
    HealingAction.objects.filter(pk=action.pk).update(verify_after=now - timedelta(seconds=1))
    assert _next(now) == pytest.approx(120)
    FailureRecord.objects.filter(pk=failure.pk).update(status=FailureStatus.RESOLVED)
    assert _next(now) == pytest.approx(120)  # the resolution woke the tenant (healing_wake); the deadline remains


def test_a_waiting_action_is_looked_at_when_it_escalates(clean: None) -> None:
    now = timezone.now()
    source = make_source("awaiting")[0]
    HealingAction.objects.create(
        source=source,
        strategy="full_reconcile",
        risk="high",
        status=HealingStatus.AWAITING_APPROVAL,
        requested_at=now,
        next_escalation_at=now + timedelta(seconds=90),
    )
    assert _next(now) == pytest.approx(90)


def test_a_pass_has_work_only_with_a_failure_open_or_to_analyse_or_an_action_unsettled(clean: None) -> None:
    now = timezone.now()
    source = make_source("work")[0]
    # nothing at all; then only what is settled: a resolved, analysed failure and finished actions
    assert not healing_has_work()
    failure = _failure(source, analysis_due=False, status=FailureStatus.RESOLVED)
    for status in (HealingStatus.SUCCEEDED, HealingStatus.FAILED, HealingStatus.REJECTED):
        HealingAction.objects.create(
            source=source, strategy="keep_polling", risk="low", status=status, requested_at=now, failure=failure
        )
    assert not healing_has_work()
    # each of these is work for a pass
    FailureRecord.objects.filter(pk=failure.pk).update(analysis_due=True)
    assert healing_has_work()
    FailureRecord.objects.filter(pk=failure.pk).update(analysis_due=False, status=FailureStatus.OPEN)
    assert healing_has_work()
    FailureRecord.objects.filter(pk=failure.pk).update(status=FailureStatus.RESOLVED)
    for status in UNSETTLED_ACTIONS:
        action = HealingAction.objects.create(
            source=source, strategy="keep_polling", risk="low", status=status, requested_at=now, failure=failure
        )
        assert healing_has_work(), status
        action.delete()
    assert not healing_has_work()


def test_a_tenant_without_healing_work_is_passed_over_until_its_idle_period(
    clean: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: nothing open; a pass would be a dozen queries for nothing
    monkeypatch.setattr(healing_tasks, "healing_tick", lambda: pytest.fail("a pass without work ran"))
    schedule = TenantSchedule.objects.filter(tenant_id=connection.tenant.pk)
    schedule.update(next_healing_at=None)
    before = timezone.now()
    # when
    done = healing_tasks.healing_tick_task()
    # then: nothing done, next pass within the jittered idle period
    assert done == {"analysed": 0, "verified": 0, "escalated": 0, "recovered": 0}
    due = schedule.get().next_healing_at
    assert due is not None
    assert (due - before).total_seconds() >= 0.8 * settings.BEASTFLOW_HEALING_IDLE_S - 1
    assert (due - before).total_seconds() <= settings.BEASTFLOW_HEALING_IDLE_S + 1
