"""Reads of failures, RCA results, healing actions and strategy stats: shared by the API and the console."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from healing.bandit import Arm
from healing.learning import evaluate
from healing.models import FailureRecord, HealingAction, HealingEvent, RCAResult, StrategyStats
from healing.strategies import STRATEGIES


def _pk(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


# -- failures ---------------------------------------------------------------------


def failures(*, source_id: int | None = None, status: str | None = None) -> QuerySet[FailureRecord]:
    rows = FailureRecord.objects.all().order_by("-id")
    if source_id is not None:
        rows = rows.filter(source_id=source_id)
    if status is not None:
        rows = rows.filter(status=status)
    return rows


def failure_get(failure_id: Any) -> FailureRecord | None:
    pk = _pk(failure_id)
    return None if pk is None else FailureRecord.objects.filter(pk=pk).first()


def failure_render(failure: FailureRecord) -> dict[str, Any]:
    return {
        "id": failure.pk,
        "source": failure.source_id,
        "kind": failure.kind,
        "fingerprint": failure.fingerprint,
        "occurrences": failure.occurrences,
        "first_seen": failure.first_seen.isoformat(),
        "last_seen": failure.last_seen.isoformat(),
        "detail": failure.detail,
        "status": failure.status,
        "severity": failure.severity,
        "priority": failure.priority,
        "attempts": failure.attempts,
        "needs_operator": failure.needs_operator,
        "resolved_by": failure.resolved_by or None,
    }


# -- RCA --------------------------------------------------------------------------

RCA_STATUSES = ("confirmed", "unconfirmed")


def rca_results(*, source_id: int | None = None, status: str | None = None) -> QuerySet[RCAResult]:
    rows = RCAResult.objects.all().order_by("-id")
    if source_id is not None:
        rows = rows.filter(source_id=source_id)
    if status == "confirmed":
        rows = rows.exclude(confirmed_category="")
    elif status == "unconfirmed":
        rows = rows.filter(confirmed_category="")
    return rows


def rca_get(rca_id: Any) -> RCAResult | None:
    pk = _pk(rca_id)
    return None if pk is None else RCAResult.objects.select_related("failure").filter(pk=pk).first()


def rca_render(rca: RCAResult) -> dict[str, Any]:
    """docs/contract.md §7 fields, then the ranking, the learner's view and the operator's answer."""
    return {
        "id": rca.pk,
        "source": rca.source_id,
        "failure": rca.failure_id,
        "category": rca.category,
        "confidence": rca.confidence,
        "evidence": rca.evidence,
        "created_at": rca.created_at.isoformat(),
        "confirmed": rca.confirmed,
        "rule": rca.rule or None,
        "rules_version": rca.rules_version,
        "alternatives": rca.alternatives,
        "learner": rca.learner,
        "confirmed_category": rca.confirmed_category or None,
        "confirmed_by": rca.confirmed_by or None,
        "confirmed_at": _iso(rca.confirmed_at),
        "confirm_note": rca.confirm_note or None,
    }


def rca_timeline(rca: RCAResult) -> list[dict[str, Any]]:
    """What happened around the failure, oldest first: reports, switches, actions and their steps."""
    from engines.models import ModeSwitch

    failure = rca.failure
    items: list[dict[str, Any]] = [
        {"at": failure.first_seen, "what": f"{failure.kind} first reported"},
    ]
    if failure.occurrences > 1:
        items.append({"at": failure.last_seen, "what": f"{failure.kind} seen {failure.occurrences} times in all"})
    if failure.source_id is not None:
        from datetime import timedelta

        switches = ModeSwitch.objects.filter(
            source_id=failure.source_id,
            at__gte=failure.first_seen - timedelta(minutes=10),
            at__lte=failure.last_seen + timedelta(minutes=10),
        ).order_by("at")[:20]
        for switch in switches:
            items.append({"at": switch.at, "what": f"mode {switch.from_mode} -> {switch.to_mode}: {switch.reason}"})
    items.append({"at": rca.created_at, "what": f"RCA: {rca.category} ({rca.confidence:.0%})"})
    events = HealingEvent.objects.filter(action__failure_id=failure.pk).select_related("action").order_by("at")[:50]
    for event in events:
        note = f": {event.note}" if event.note else ""
        items.append({"at": event.at, "what": f"{event.action.strategy} {event.kind} by {event.actor}{note}"})
    if rca.confirmed_at:
        items.append({"at": rca.confirmed_at, "what": f"confirmed as {rca.confirmed_category} by {rca.confirmed_by}"})
    items.sort(key=lambda item: item["at"])
    return [{"at": item["at"].isoformat(), "what": item["what"]} for item in items]


def learner_report() -> dict[str, Any]:
    """The classifier's accuracy on held-out confirmed cases, and how many it learned from."""
    from healing.rca.analysis import confirmed_cases, learner

    cases = confirmed_cases()
    model = learner()
    return {
        "confirmed_cases": len(cases),
        "weight": round(model.weight(), 3),
        "held_out": evaluate(cases).as_dict(),
    }


# -- healing actions ----------------------------------------------------------------


def healing_actions(
    *, source_id: int | None = None, status: str | None = None, failure_id: int | None = None
) -> QuerySet[HealingAction]:
    actions = HealingAction.objects.all()
    if source_id is not None:
        actions = actions.filter(source_id=source_id)
    if status is not None:
        actions = actions.filter(status=status)
    if failure_id is not None:
        actions = actions.filter(failure_id=failure_id)
    return actions


def healing_action_get(action_id: Any) -> HealingAction | None:
    pk = _pk(action_id)
    return None if pk is None else HealingAction.objects.filter(pk=pk).first()


def healing_action_render(action: HealingAction, *, events: bool = False) -> dict[str, Any]:
    """docs/contract.md §7 fields, then the decision's reason, what the action is about, and escalation."""
    body = {
        "id": action.pk,
        "source": action.source_id,
        "rca": action.rca_id,
        "strategy": action.strategy,
        "risk": action.risk,
        "status": action.status,
        "requested_at": action.requested_at.isoformat(),
        "decided_by": action.decided_by or None,
        "decided_at": _iso(action.decided_at),
        "outcome": action.outcome,
        "reason": action.reason or None,
        "detail": action.detail,
        "failure": action.failure_id,
        "category": action.category or None,
        "escalation_level": action.escalation_level,
        "next_escalation_at": _iso(action.next_escalation_at),
        "verify_deadline": _iso(action.verify_deadline),
    }
    if events:
        body["events"] = [
            {"kind": e.kind, "actor": e.actor, "note": e.note, "at": e.at.isoformat(), "detail": e.detail}
            for e in action.events.order_by("id")
        ]
    return body


# -- strategies ----------------------------------------------------------------------


def strategy_stats() -> list[dict[str, Any]]:
    """Every strategy with its observed outcomes per category (the bandit's posterior mean)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for stats in StrategyStats.objects.all():
        arm = Arm(stats.successes, stats.failures)
        rows.setdefault(stats.strategy, []).append(
            {
                "category": stats.category,
                "successes": stats.successes,
                "failures": stats.failures,
                "success_rate": round(stats.successes / arm.trials, 3) if arm.trials else None,
                "posterior_mean": round(arm.mean, 3),
            }
        )
    out = []
    for strategy in STRATEGIES:
        per_category = rows.get(strategy.name, [])
        successes = sum(r["successes"] for r in per_category)
        trials = successes + sum(r["failures"] for r in per_category)
        out.append(
            {
                **strategy.as_dict(),
                "successes": successes,
                "failures": trials - successes,
                "success_rate": round(successes / trials, 3) if trials else None,
                "by_category": per_category,
            }
        )
    return out
