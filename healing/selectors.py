"""Reads of healing actions, shared by the API and (later) the console."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from healing.models import HealingAction


def healing_actions(*, source_id: int | None = None, status: str | None = None) -> QuerySet[HealingAction]:
    actions = HealingAction.objects.all()
    if source_id is not None:
        actions = actions.filter(source_id=source_id)
    if status is not None:
        actions = actions.filter(status=status)
    return actions


def healing_action_get(action_id: Any) -> HealingAction | None:
    try:
        pk = int(action_id)
    except (TypeError, ValueError):
        return None
    return HealingAction.objects.filter(pk=pk).first()


def healing_action_render(action: HealingAction) -> dict[str, Any]:
    """CONTRACT §7 fields, then the decision's reason and what the action is about."""
    return {
        "id": action.pk,
        "source": action.source_id,
        "rca": action.rca_id,
        "strategy": action.strategy,
        "risk": action.risk,
        "status": action.status,
        "requested_at": action.requested_at.isoformat(),
        "decided_by": action.decided_by or None,
        "decided_at": action.decided_at.isoformat() if action.decided_at else None,
        "outcome": action.outcome,
        "reason": action.reason or None,
        "detail": action.detail,
    }
