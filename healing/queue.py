"""The failure queue: analyse and heal the highest-priority failures first.

A failure enters the queue when it is first reported (`analysis_due`) and
again when a healing attempt on it failed. Each tick takes up to `limit`
of the current tenant's queued failures, highest priority (severity x
tenant tier) first, oldest first among equals, claimed with SKIP LOCKED so
two ticks never take the same one. Resolved failures are still analysed
(every failure gets an explanation) but not healed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from django.db import connection, transaction
from django.utils import timezone

from healing.approvals import escalations_run
from healing.healer import actions_verify, failure_heal
from healing.models import FailureRecord, FailureStatus, HealingAction, HealingStatus, RCAResult
from healing.rca.analysis import rca_analyze
from healing.rca.context import failure_features
from healing.recovery import failures_resolve_recovered, quiet_s, quiet_since
from healing.services import WAITING

log = structlog.get_logger(__name__)

QUEUE_LIMIT = 50


def queue_claim(limit: int = QUEUE_LIMIT) -> list[int]:
    with transaction.atomic():
        ids = list(
            FailureRecord.objects.filter(analysis_due=True)
            .order_by("-priority", "first_seen", "pk")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:limit]
        )
        FailureRecord.objects.filter(pk__in=ids).update(analysis_due=False)
    return ids


def failure_process(failure_id: int) -> RCAResult | None:
    """RCA (once per failure; a retry reuses it) and then the next healing step."""
    failure = FailureRecord.objects.select_related("source").filter(pk=failure_id).first()
    if failure is None:
        return None
    rca = RCAResult.objects.filter(failure=failure).order_by("-id").first()
    if rca is None:
        rca = rca_analyze(failure)
        features = dict(rca.features)
    else:
        features = failure_features(failure)  # the situation may have changed since
    with transaction.atomic():
        failure_heal(failure, rca, features)
    return rca


def queue_process(limit: int = QUEUE_LIMIT) -> int:
    processed = 0
    for failure_id in queue_claim(limit):
        try:
            failure_process(failure_id)
            processed += 1
        except Exception:
            # One failure that cannot be analysed must not hold up the others.
            log.exception("failure_process_failed", failure=failure_id)
    return processed


# Where an action still has a step ahead of it: verified, escalated, decided, run.
UNSETTLED_ACTIONS = (
    HealingStatus.PROPOSED,
    HealingStatus.AWAITING_APPROVAL,
    HealingStatus.APPROVED,
    HealingStatus.RUNNING,
    HealingStatus.ESCALATED,
)


def healing_has_work() -> bool:
    """Whether a pass can find anything in the current tenant: a failure open or to analyse, an action unsettled.

    One query. Most tenants most of the time have neither, and a pass over
    them was a dozen queries on empty tables, every few minutes, per tenant.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {FailureRecord._meta.db_table} WHERE analysis_due OR status = %s)"  # noqa: S608
            f" OR EXISTS (SELECT 1 FROM {HealingAction._meta.db_table} WHERE status = ANY(%s))",
            [FailureStatus.OPEN.value, [status.value for status in UNSETTLED_ACTIONS]],
        )
        return bool(cursor.fetchone()[0])


def healing_tick(*, now: datetime | None = None) -> dict[str, int]:
    """One pass for the current tenant: queue, verification, escalation, recovery."""
    now = now or timezone.now()
    return {
        "analysed": queue_process(),
        "verified": actions_verify(now=now),
        "escalated": escalations_run(now=now),
        "recovered": failures_resolve_recovered(now=now),
    }


def healing_next_due(*, now: datetime, tick_s: float, idle_s: float) -> datetime:
    """When the current tenant next needs a healing pass (docs/scheduling.md).

    Soon (a tick) while something can happen at any moment: a failure to
    analyse, an action between states. Otherwise at the first time something
    falls due: an open failure whose source is back on push with a good
    verdict, when the recovery sweep may close it (a tick at the earliest),
    a running action's verification (`verify_after` still ahead, else its
    deadline) or a waiting action's escalation, and at `idle_s` at most.
    What changes outside a pass (a new failure, an engine resolving one, an
    operator's decision, a source switching back to push) wakes the tenant
    (healing.services.healing_wake).
    """
    soon = now + timedelta(seconds=tick_s)
    if FailureRecord.objects.filter(analysis_due=True).exists():
        return soon
    if HealingAction.objects.filter(status__in=[HealingStatus.PROPOSED, HealingStatus.APPROVED]).exists():
        return soon
    due = [now + timedelta(seconds=idle_s)]
    # The recovery sweep closes these once quiet for long enough: a pass then,
    # not every tick of the countdown (a mass recovery of a thousand tenants
    # would otherwise be a pass per tenant per tick for minutes). A close
    # that is overdue (a hole still open) is looked at every tick.
    recoverable = FailureRecord.objects.filter(
        status=FailureStatus.OPEN, source__paused=False, source__mode="event", source__verdict="good"
    ).select_related("source")
    for failure in recoverable:
        assert failure.source is not None
        due.append(quiet_since(failure, failure.source) + timedelta(seconds=quiet_s(failure)))
    running = HealingAction.objects.filter(status=HealingStatus.RUNNING, verify_deadline__isnull=False)
    for verify_after, deadline in running.values_list("verify_after", "verify_deadline"):
        at = verify_after if verify_after is not None and verify_after > now else deadline
        if at is not None:
            due.append(at)
    waiting = HealingAction.objects.filter(status__in=WAITING, next_escalation_at__isnull=False)
    due.extend(at for at in waiting.values_list("next_escalation_at", flat=True) if at is not None)
    return max(soon, min(due))


def queue_backlog_age_s(now: datetime | None = None) -> float | None:
    oldest = FailureRecord.objects.filter(analysis_due=True).order_by("first_seen").values_list("last_seen", flat=True)
    first = oldest.first()
    return None if first is None else max(0.0, ((now or timezone.now()) - first).total_seconds())
