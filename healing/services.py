"""Writes on failures: every engine reports what went wrong through here."""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import structlog
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from beastflow import correlation
from healing.models import FailureRecord, FailureStatus, HealingAction, HealingStatus
from healing.schemas import FailureReport

log = structlog.get_logger(__name__)


def failure_report(
    *,
    kind: str,
    source_id: int | None = None,
    identity: dict[str, Any] | None = None,
    detail: dict[str, Any] | None = None,
) -> FailureRecord:
    """Record a failure; a repeat of an open one (same fingerprint) folds into its occurrences.

    The newest detail replaces the stored one, so the record shows the
    latest context; first_seen and the count keep the history.
    """
    report = FailureReport(kind=kind, source_id=source_id, identity=identity or {}, detail=detail or {})
    fingerprint = report.fingerprint()
    now = timezone.now()
    for _ in range(2):  # a concurrent first report can win the insert: then fold into it
        updated = FailureRecord.objects.filter(fingerprint=fingerprint, status=FailureStatus.OPEN).update(
            occurrences=F("occurrences") + 1, last_seen=now, detail=report.detail
        )
        if updated:
            record = FailureRecord.objects.get(fingerprint=fingerprint, status=FailureStatus.OPEN)
            break
        try:
            with transaction.atomic():
                record = FailureRecord.objects.create(
                    source_id=source_id,
                    kind=kind,
                    fingerprint=fingerprint,
                    first_seen=now,
                    last_seen=now,
                    detail=report.detail,
                    correlation_id=correlation.current() or "",
                )
            break
        except IntegrityError:
            continue
    log.info("failure_reported", kind=kind, source=source_id, occurrences=record.occurrences)
    return record


def failure_resolve(*, source_id: int | None, kind: str, identity: dict[str, Any] | None = None) -> int:
    """Close the open failures of a kind on a source (it works again).

    With `identity`, only the one reported with that identity (one engine's
    failure, where another engine may still fail the same way).
    """
    open_failures = FailureRecord.objects.filter(kind=kind, status=FailureStatus.OPEN)
    if identity is not None:
        fingerprint = FailureReport(kind=kind, source_id=source_id, identity=identity).fingerprint()
        open_failures = open_failures.filter(fingerprint=fingerprint)
    if source_id is None:
        open_failures = open_failures.filter(source__isnull=True)
    else:
        open_failures = open_failures.filter(source_id=source_id)
    closed = open_failures.update(status=FailureStatus.RESOLVED, last_seen=timezone.now())
    if closed:
        log.info("failure_resolved", kind=kind, source=source_id, count=closed)
    return closed


# -- healing actions ---------------------------------------------------------------

# Where each strategy is carried out: a module with `approved(action)` and
# `rejected(action)`, imported when first needed (the engines depend on
# healing, not the other way round).
STRATEGY_HANDLERS = {"full_reconcile": "engines.reconcile.runs"}
# Actions that have been decided and not yet finished.
_IN_PROGRESS = (HealingStatus.APPROVED, HealingStatus.RUNNING)


class HealingActionError(Exception):
    """An action that cannot take this decision now (status says why)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class StrategyHandler(Protocol):
    def approved(self, action: HealingAction) -> None: ...

    def rejected(self, action: HealingAction) -> None: ...


def _handler(strategy: str) -> StrategyHandler:
    module: StrategyHandler = importlib.import_module(STRATEGY_HANDLERS[strategy])
    return module


def healing_action_request(
    *, source_id: int | None, strategy: str, risk: str, detail: dict[str, Any]
) -> tuple[HealingAction, bool]:
    """Ask an operator to approve `strategy`; False when an action already waits for it.

    A waiting action of the same strategy for the source takes the newer
    detail (what approving it would now act on) instead of a second action.
    """
    now = timezone.now()
    for _ in range(2):  # a concurrent first request can win the insert: then fold into it
        waiting = HealingAction.objects.filter(
            source=source_id, strategy=strategy, status=HealingStatus.AWAITING_APPROVAL
        )
        if waiting.update(detail=detail, risk=risk):
            action = waiting.get()
            log.info("healing_action_refreshed", action=action.pk, strategy=strategy, source=source_id)
            return action, False
        try:
            with transaction.atomic():
                action = HealingAction.objects.create(
                    source_id=source_id,
                    strategy=strategy,
                    risk=risk,
                    status=HealingStatus.AWAITING_APPROVAL,
                    requested_at=now,
                    detail=detail,
                )
        except IntegrityError:
            continue
        log.info("healing_action_requested", action=action.pk, strategy=strategy, risk=risk, source=source_id)
        return action, True
    raise RuntimeError("could neither create nor find the waiting healing action")


@transaction.atomic
def healing_action_approve(*, action: HealingAction, actor: str, reason: str) -> HealingAction:
    """Approve a waiting action and start it. Raises HealingActionError (409) when it is not waiting,
    or when its strategy cannot start now; then nothing changes."""
    _decide(action, status=HealingStatus.APPROVED, actor=actor, reason=reason)
    _handler(action.strategy).approved(action)
    log.info("healing_action_approved", action=action.pk, strategy=action.strategy, actor=actor)
    return action


@transaction.atomic
def healing_action_reject(*, action: HealingAction, actor: str, reason: str) -> HealingAction:
    """Reject a waiting action: nothing runs; who and why are kept. Raises HealingActionError (409)."""
    _decide(action, status=HealingStatus.REJECTED, actor=actor, reason=reason)
    _handler(action.strategy).rejected(action)
    log.info("healing_action_rejected", action=action.pk, strategy=action.strategy, actor=actor)
    return action


def _decide(action: HealingAction, *, status: HealingStatus, actor: str, reason: str) -> None:
    now = timezone.now()
    # Compare-and-set: of two operators deciding at once, the first decides.
    decided = HealingAction.objects.filter(pk=action.pk, status=HealingStatus.AWAITING_APPROVAL).update(
        status=status, decided_by=actor, decided_at=now, reason=reason, updated_at=now
    )
    if decided != 1:
        action.refresh_from_db()
        raise HealingActionError(409, f"The action is {action.status}, not awaiting approval.")
    action.refresh_from_db()


def healing_action_progress(*, action_id: int, status: HealingStatus, outcome: dict[str, Any] | None = None) -> bool:
    """Move a decided action to running, succeeded or failed; False when it was not in progress."""
    fields: dict[str, Any] = {"status": status, "updated_at": timezone.now()}
    if outcome is not None:
        fields["outcome"] = outcome
    moved = HealingAction.objects.filter(pk=action_id, status__in=_IN_PROGRESS).update(**fields)
    if moved:
        log.info("healing_action_progress", action=action_id, status=status.value)
    return bool(moved)
