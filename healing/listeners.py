"""Healing hears what the engines announce (engines/outbound.py): failures, approvals, their progress.

Subscribed in HealingConfig.ready(). Each listener is the direct call it
replaced, run in the announcing engine's thread and transaction.
"""

from __future__ import annotations

from engines import outbound
from healing.models import HealingStatus
from healing.services import (
    failure_report,
    failure_resolve,
    healing_action_progress,
    healing_action_request,
    stream_failure_report,
    stream_gap_report,
)


def _observed(event: outbound.FailureObserved) -> None:
    failure_report(kind=event.kind, source_id=event.source_id, identity=event.identity, detail=event.detail)


def _cleared(event: outbound.FailureCleared) -> None:
    failure_resolve(source_id=event.source_id, kind=event.kind, identity=event.identity)


def _degraded(event: outbound.StreamDegraded) -> None:
    stream_failure_report(source_id=event.source_id, health=event.health, signals=event.signals, reason=event.reason)


def _gap(event: outbound.StreamGapFound) -> None:
    stream_gap_report(
        source_id=event.source_id, after_seq=event.after_seq, missing=event.missing, signals=event.signals
    )


def _progress(event: outbound.ApprovalProgress) -> None:
    healing_action_progress(action_id=event.action_id, status=HealingStatus(event.status), outcome=event.outcome)


def _approval(event: outbound.ApprovalNeeded) -> outbound.ApprovalAnswer:
    action, created = healing_action_request(
        source_id=event.source_id, strategy=event.strategy, risk=event.risk, detail=event.detail
    )
    return outbound.ApprovalAnswer(action_id=action.pk, created=created)


def listen() -> None:
    outbound.subscribe(outbound.FailureObserved, _observed)
    outbound.subscribe(outbound.FailureCleared, _cleared)
    outbound.subscribe(outbound.StreamDegraded, _degraded)
    outbound.subscribe(outbound.StreamGapFound, _gap)
    outbound.subscribe(outbound.ApprovalProgress, _progress)
    outbound.approver(_approval)
