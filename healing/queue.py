"""The failure queue: analyse and heal the highest-priority failures first.

A failure enters the queue when it is first reported (`analysis_due`) and
again when a healing attempt on it failed. Each tick takes up to `limit`
of the current tenant's queued failures, highest priority (severity x
tenant tier) first, oldest first among equals, claimed with SKIP LOCKED so
two ticks never take the same one. Resolved failures are still analysed
(every failure gets an explanation) but not healed.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from django.db import transaction
from django.utils import timezone

from healing.approvals import escalations_run
from healing.healer import actions_verify, failure_heal
from healing.models import FailureRecord, FailureStatus, HealingAction, HealingStatus, RCAResult
from healing.rca.analysis import rca_analyze
from healing.rca.context import failure_features
from healing.recovery import failures_resolve_recovered

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


def healing_tick(*, now: datetime | None = None) -> dict[str, int]:
    """One pass for the current tenant: queue, verification, escalation, recovery."""
    now = now or timezone.now()
    return {
        "analysed": queue_process(),
        "verified": actions_verify(now=now),
        "escalated": escalations_run(now=now),
        "recovered": failures_resolve_recovered(now=now),
    }


def healing_has_work() -> bool:
    """Does the current tenant need another pass soon: an open failure, or an action waiting or running?"""
    if FailureRecord.objects.filter(status=FailureStatus.OPEN).exists():
        return True
    waiting = [HealingStatus.AWAITING_APPROVAL, HealingStatus.APPROVED, HealingStatus.RUNNING]
    return HealingAction.objects.filter(status__in=waiting).exists()


def queue_backlog_age_s(now: datetime | None = None) -> float | None:
    oldest = FailureRecord.objects.filter(analysis_due=True).order_by("first_seen").values_list("last_seen", flat=True)
    first = oldest.first()
    return None if first is None else max(0.0, ((now or timezone.now()) - first).total_seconds())
