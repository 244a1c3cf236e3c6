"""Claiming due work across tenants, and keeping deadlines: the public schedule tables."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from engines import source_ops, sources
from scheduling.claims import evals_claim, sources_claim_fair, tenant_schedules_fill, tenants_claim
from scheduling.models import SourceSchedule, TenantSchedule
from scheduling.services import source_evals_set, source_wake, tenant_due_at, tenant_wake
from tests.conftest import Persona
from tests.factories import make_source


@pytest.fixture
def quiet(db: None) -> datetime:
    """Nothing else in the (reused) test database is due: only what the test schedules.

    Every tenant gets its schedule row first: a tenant without one would be
    given one with everything due by the first `tenant_schedules_fill`.
    """
    tenant_schedules_fill()
    SourceSchedule.objects.update(next_eval_at=None, next_poll_at=None, next_reconcile_at=None)
    TenantSchedule.objects.update(next_healing_at=None, next_sweep_at=None)
    return timezone.now()


def test_a_new_source_is_scheduled_for_everything_at_once(alice: Persona, quiet: datetime) -> None:
    with tenant_context(alice.tenant):
        source, _ = make_source("fresh")
    row = SourceSchedule.objects.get(pk=source.pk)
    assert row.tenant_id == alice.tenant.pk
    assert row.next_eval_at and row.next_poll_at and row.next_reconcile_at
    assert row.next_eval_at <= timezone.now()


def test_a_source_without_scheduled_reconciliations_never_gets_a_reconcile_deadline(
    alice: Persona, quiet: datetime
) -> None:
    # given: no snapshot to reconcile with, and a snapshot with scheduled runs turned off
    with tenant_context(alice.tenant):
        bare, _ = make_source("bare", config={"poll_url": "http://127.0.0.1:9001/changes"})
        off, _ = make_source("off", reconcile={"interval_s": 0})
        # when: created, then paused, resumed and edited (each wakes the engines)
        for source in (bare, off):
            source_ops.pause(source)
            source_ops.resume(source)
            sources.source_update(source=source, changes={"hysteresis": {"fail_threshold": 4}})
        unscheduled = SourceSchedule.objects.get(pk=bare.pk).next_reconcile_at
        # and: a snapshot given later puts it on the reconcile schedule
        sources.source_update(
            source=bare, changes={"config": {**bare.config, "snapshot_url": "http://127.0.0.1:9001/snapshot"}}
        )
    # then
    rows = SourceSchedule.objects.in_bulk([bare.pk, off.pk])
    assert unscheduled is None
    assert rows[off.pk].next_reconcile_at is None
    assert rows[off.pk].next_eval_at is not None and rows[off.pk].next_poll_at is not None
    assert rows[bare.pk].next_reconcile_at is not None and rows[bare.pk].next_reconcile_at <= timezone.now()


def test_due_judgements_are_claimed_once_oldest_first_and_leased(alice: Persona, quiet: datetime) -> None:
    with tenant_context(alice.tenant):
        old, _ = make_source("old")
        new, _ = make_source("new")
        later, _ = make_source("later")
    now = quiet
    SourceSchedule.objects.filter(pk=old.pk).update(next_eval_at=now - timedelta(seconds=9))
    SourceSchedule.objects.filter(pk=new.pk).update(next_eval_at=now - timedelta(seconds=1))
    SourceSchedule.objects.filter(pk=later.pk).update(next_eval_at=now + timedelta(seconds=60))
    # when
    claims = evals_claim(limit=10, lease_s=30, now=now)
    # then
    assert [c.id for c in claims] == [old.pk, new.pk]
    assert claims[0].due_at == now - timedelta(seconds=9)
    assert SourceSchedule.objects.get(pk=old.pk).next_eval_at == now + timedelta(seconds=30)
    assert evals_claim(limit=10, lease_s=30, now=now) == []  # leased: nobody takes them again
    assert [c.id for c in evals_claim(limit=10, lease_s=30, now=now + timedelta(seconds=31))] == [old.pk, new.pk]


def test_one_tenants_backlog_does_not_delay_another_tenants_due_poll(
    alice: Persona, charlie: Persona, quiet: datetime
) -> None:
    # given: acme has 30 polls overdue for a while, globex one that just became due
    with tenant_context(alice.tenant):
        busy = [make_source(f"busy-{n}")[0].pk for n in range(30)]
    with tenant_context(charlie.tenant):
        single = make_source("single")[0].pk
    SourceSchedule.objects.filter(pk__in=busy).update(next_poll_at=quiet - timedelta(seconds=60))
    SourceSchedule.objects.filter(pk=single).update(next_poll_at=quiet - timedelta(seconds=1))
    # when: a round with room for five
    claims = sources_claim_fair("next_poll_at", capacity=5, lease_s=30, now=quiet)
    # then: globex's poll goes in this round, among the first two sent
    ids = [c.id for c in claims]
    assert len(ids) == 5
    assert single in ids[:2]
    assert set(ids) - {single} <= set(busy)


def test_a_wake_only_ever_makes_work_due_sooner(alice: Persona, quiet: datetime) -> None:
    with tenant_context(alice.tenant):
        source, _ = make_source("woken")
    soon = quiet - timedelta(seconds=5)
    SourceSchedule.objects.filter(pk=source.pk).update(next_eval_at=soon, next_poll_at=quiet + timedelta(hours=1))
    source_wake(source.pk, judge=True, poll=True)
    row = SourceSchedule.objects.get(pk=source.pk)
    assert row.next_eval_at == soon  # already due sooner: kept
    assert row.next_poll_at is not None and row.next_poll_at <= timezone.now()


def test_a_judgement_does_not_overwrite_a_wake_that_came_while_it_worked(alice: Persona, quiet: datetime) -> None:
    # given: a source claimed (leased), then woken (an operator forced its mode) before its judge wrote back
    with tenant_context(alice.tenant):
        source, other = make_source("claimed")[0], make_source("also-claimed")[0]
    SourceSchedule.objects.filter(pk__in=[source.pk, other.pk]).update(next_eval_at=quiet - timedelta(seconds=1))
    claims = {c.id: c for c in evals_claim(limit=10, lease_s=30, now=quiet)}
    source_wake(source.pk)
    woken_at = SourceSchedule.objects.get(pk=source.pk).next_eval_at
    # when: the judge writes deadlines five minutes out
    far = quiet + timedelta(minutes=5)
    source_evals_set([(source.pk, far), (other.pk, far)], leases={k: c.lease_until for k, c in claims.items()})
    # then: the wake survives, the untouched one takes the judge's deadline
    assert SourceSchedule.objects.get(pk=source.pk).next_eval_at == woken_at
    assert SourceSchedule.objects.get(pk=other.pk).next_eval_at == far


def test_tenant_work_is_claimed_when_due_and_rescheduled_by_the_pass(
    alice: Persona, charlie: Persona, quiet: datetime
) -> None:
    tenant_schedules_fill()
    tenant_wake(tenant_id=alice.tenant.pk, healing=True)
    claims = tenants_claim("next_healing_at", limit=10, lease_s=60)
    assert [c.tenant_id for c in claims] == [alice.tenant.pk]  # globex has nothing due
    assert tenants_claim("next_healing_at", limit=10, lease_s=60) == []
    later = timezone.now() + timedelta(seconds=300)
    tenant_due_at(alice.tenant.pk, "next_healing_at", later, lease=claims[0].lease_until)
    assert TenantSchedule.objects.get(pk=alice.tenant.pk).next_healing_at == later
    tenant_wake(schema="t_globex", sweep=True)
    assert [c.tenant_id for c in tenants_claim("next_sweep_at", limit=10, lease_s=60)] == [charlie.tenant.pk]


@pytest.fixture(params=["healing", "callbacks"])
def tenant_dispatch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A tenant-level dispatch round, its deadline, and the room it is given (recorded as asked).

    The room is what scheduling.queues.queue_room answers (its rule is
    tested in test_queue_room.py); given here, because a worker of the
    session may consume the real queue while the test counts it.
    """
    from callbacks import tasks as callbacks_tasks
    from healing import tasks as healing_tasks
    from scheduling import rounds

    round_, column, setting = {
        "healing": (
            healing_tasks.healing_dispatch_task,
            "next_healing_at",
            "BEASTFLOW_HEALING_IN_FLIGHT",
        ),
        "callbacks": (
            callbacks_tasks.callbacks_sweep_task,
            "next_sweep_at",
            "BEASTFLOW_CALLBACKS_SWEEPS_IN_FLIGHT",
        ),
    }[request.param]
    room = {"now": 0}
    asked: list[tuple[str, int]] = []

    def queue_room(name: str, bound: int, *, max_wait_s: float | None = None) -> int:
        asked.append((name, bound))
        assert max_wait_s is not None and max_wait_s > 0  # the queue's age is part of the rule
        return room["now"]

    monkeypatch.setattr(rounds, "queue_room", queue_room)
    sent: list[object] = []
    task = healing_tasks.healing_tick_task if request.param == "healing" else callbacks_tasks.callbacks_deliver_task
    monkeypatch.setattr(task, "apply_async", lambda *args, **kwargs: sent.append(kwargs))
    return round_, column, request.param, setting, room, asked, sent


def test_tenant_passes_are_sent_only_as_far_as_their_queue_has_room(
    alice: Persona, charlie: Persona, quiet: datetime, tenant_dispatch: Any, settings: Any
) -> None:
    round_, column, queue, setting, room, asked, sent = tenant_dispatch
    setattr(settings, setting, 7)
    # given: both tenants' passes due, alice's longer
    now = timezone.now()
    TenantSchedule.objects.filter(pk=alice.tenant.pk).update(**{column: now - timedelta(seconds=30)})
    TenantSchedule.objects.filter(pk=charlie.tenant.pk).update(**{column: now - timedelta(seconds=5)})
    # when the queue has no room: nothing is sent and both stay due
    assert round_() == 0 and sent == []
    assert asked == [(queue, 7)]
    assert getattr(TenantSchedule.objects.get(pk=alice.tenant.pk), column) <= now
    # room for one: the most overdue tenant is sent, the other stays due in the schedule
    room["now"] = 1
    assert round_() == 1 and len(sent) == 1
    assert getattr(TenantSchedule.objects.get(pk=alice.tenant.pk), column) > now  # its claim's lease
    assert getattr(TenantSchedule.objects.get(pk=charlie.tenant.pk), column) <= now
    # room again: the other tenant's turn
    assert round_() == 1 and len(sent) == 2
    assert getattr(TenantSchedule.objects.get(pk=charlie.tenant.pk), column) > now


def test_a_new_failure_makes_its_tenants_healing_pass_due(
    alice: Persona, quiet: datetime, django_capture_on_commit_callbacks: Any
) -> None:
    from healing.services import failure_report

    tenant_schedules_fill()
    with tenant_context(alice.tenant), django_capture_on_commit_callbacks(execute=True):
        source, _ = make_source("failing")
        failure_report(kind="upstream_unavailable", source_id=source.pk, detail={"host": "h"})
    row = TenantSchedule.objects.get(pk=alice.tenant.pk)
    assert row.next_healing_at is not None and row.next_healing_at <= timezone.now()


def test_a_tenant_with_a_source_due_has_its_nearly_due_ones_judged_with_it(
    alice: Persona, charlie: Persona, quiet: datetime
) -> None:
    # given: acme has one source due, one due in 2 s and one in 10 s; globex one due in 2 s
    with tenant_context(alice.tenant):
        due, soon, later = (make_source(f"coalesce-{n}")[0].pk for n in range(3))
    with tenant_context(charlie.tenant):
        elsewhere = make_source("coalesce-elsewhere")[0].pk
    for pk, offset in ((due, -1), (soon, 2), (later, 10), (elsewhere, 2)):
        SourceSchedule.objects.filter(pk=pk).update(next_eval_at=quiet + timedelta(seconds=offset))
    # when
    claims = evals_claim(limit=10, lease_s=30, coalesce_s=5, now=quiet)
    # then: acme's schema is visited once for both; globex, with nothing due, waits for its own deadline
    assert [c.id for c in claims] == [due, soon]
