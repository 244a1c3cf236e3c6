"""When a tenant next needs a healing pass: soon while something can happen, else at its next due time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from engines.models import Source
from healing.models import FailureRecord, FailureStatus, HealingAction, HealingStatus
from healing.queue import healing_next_due
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
    # back on push with a good verdict: the recovery sweep counts down, every tick
    Source.objects.filter(pk=source.pk).update(mode="event", verdict="good")
    assert _next(timezone.now()) == pytest.approx(TICK)


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
