"""Unanswered approval requests climb the escalation levels (healing.escalation) on their timeouts."""

from __future__ import annotations

from datetime import datetime

import structlog
from django.db import transaction
from django.utils import timezone

from healing import metrics
from healing.escalation import escalate
from healing.models import HealingAction, HealingEvent, HealingEventKind, HealingStatus
from healing.notify import escalation_notify
from healing.services import WAITING, escalation_policy

log = structlog.get_logger(__name__)


def escalations_run(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    policy = escalation_policy()
    escalated = 0
    due = HealingAction.objects.filter(status__in=WAITING, next_escalation_at__lte=now)
    for action in due:
        step = escalate(action.escalation_level, now, policy)
        with transaction.atomic():
            # Compare-and-set on the level: two ticks never escalate the same step twice.
            moved = HealingAction.objects.filter(
                pk=action.pk, status__in=WAITING, escalation_level=action.escalation_level
            ).update(
                status=HealingStatus.ESCALATED,
                escalation_level=step.level,
                next_escalation_at=step.next_at,
                updated_at=now,
            )
            if not moved:
                continue
            HealingEvent.objects.create(
                action=action,
                kind=HealingEventKind.ESCALATED,
                actor="healing",
                note=f"no answer: escalated to level {step.level}",
                detail={"level": step.level, "next_at": step.next_at.isoformat() if step.next_at else None},
                at=now,
            )
        escalation_notify(action_id=action.pk, level=step.level)
        metrics.ESCALATIONS.labels(level=str(step.level)).inc()
        log.info("healing_action_escalated", action=action.pk, level=step.level, strategy=action.strategy)
        escalated += 1
    return escalated
