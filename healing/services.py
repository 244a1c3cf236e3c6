"""Writes on failures: every engine reports what went wrong through here."""

from __future__ import annotations

from functools import partial
from typing import Any, Protocol

import structlog
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from beastflow import correlation
from beastflow.tenancy import current_schema, current_tenant
from engines import outbound
from engines.models import Source
from healing import metrics
from healing.escalation import first_deadline
from healing.hosts import host_failure_note
from healing.models import (
    FailureRecord,
    FailureStatus,
    HealingAction,
    HealingEvent,
    HealingEventKind,
    HealingStatus,
)
from healing.priority import priority, severity
from healing.schemas import FailureReport
from scheduling.services import tenant_wake

log = structlog.get_logger(__name__)


def failure_report(
    *,
    kind: str,
    source_id: int | None = None,
    identity: dict[str, Any] | None = None,
    detail: dict[str, Any] | None = None,
) -> FailureRecord | None:
    """Record a failure; a repeat of an open one (same fingerprint) folds into its occurrences.

    The newest detail replaces the stored one, so the record shows the
    latest context; first_seen and the count keep the history. None when
    the source was deleted meanwhile: nothing is left to fail.
    """
    report = FailureReport(kind=kind, source_id=source_id, identity=identity or {}, detail=detail or {})
    fingerprint = report.fingerprint()
    now = timezone.now()
    try:
        tier = str(current_tenant().tier)
    except RuntimeError:  # on the public schema (a platform-level failure): the middle tier
        tier = "standard"
    for _ in range(2):  # a concurrent first report can win the insert: then fold into it
        updated = FailureRecord.objects.filter(fingerprint=fingerprint, status=FailureStatus.OPEN).update(
            occurrences=F("occurrences") + 1, last_seen=now, detail=report.detail
        )
        if updated:
            record = FailureRecord.objects.get(fingerprint=fingerprint, status=FailureStatus.OPEN)
            break
        try:
            with transaction.atomic():
                if source_id is not None and not _hold_source(source_id):
                    log.info("failure_dropped_source_deleted", kind=kind, source=source_id)
                    return None
                record = FailureRecord.objects.create(
                    source_id=source_id,
                    kind=kind,
                    fingerprint=fingerprint,
                    first_seen=now,
                    last_seen=now,
                    detail=report.detail,
                    correlation_id=correlation.current() or "",
                    severity=severity(kind),
                    priority=priority(kind, tier),
                )
            metrics.FAILURES.labels(kind=kind).inc()
            healing_wake()  # a new failure: the tenant's healing pass is due now, not at its next deadline
            break
        except IntegrityError:
            continue
    host = report.detail.get("host") or (identity or {}).get("host")
    if host:
        host_failure_note(host=str(host), schema=current_schema(), source_id=source_id, kind=kind)
    log.info("failure_reported", kind=kind, source=source_id, occurrences=record.occurrences)
    return record


def _hold_source(source_id: int) -> bool:
    """Key-share lock the source row until commit (False if it is gone): a concurrent delete waits for us."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {Source._meta.db_table} WHERE id = %s FOR KEY SHARE", [source_id])  # noqa: S608
        return cursor.fetchone() is not None


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
    closed = open_failures.update(status=FailureStatus.RESOLVED, last_seen=timezone.now(), resolved_by="engine")
    if closed:
        log.info("failure_resolved", kind=kind, source=source_id, count=closed)
        healing_wake()  # an action verifying on this failure can be judged now
    return closed


def healing_wake() -> None:
    """After commit, make the current tenant's healing pass due now (docs/scheduling.md).

    Passes run when something is due (a failure to analyse, a verification
    window, an escalation) and when something changed; this is the change.
    """
    try:
        tenant_id = current_tenant().pk
    except RuntimeError:  # the public schema: no tenant to heal
        return
    transaction.on_commit(partial(tenant_wake, tenant_id=tenant_id, healing=True))


# -- healing actions ---------------------------------------------------------------

# Where an approved or rejected strategy is carried out: a strategy an engine
# carries out registered its handler with engines.outbound.strategy_handler
# (a full_reconcile awaiting approval is a run held by the reconciliation's
# safety cap, engines/reconcile/runs.py); every other strategy is healing's
# own, carried out by the handler healing.healer registers here.
# Actions that have been decided and not yet finished.
_IN_PROGRESS = (HealingStatus.APPROVED, HealingStatus.RUNNING)
# Actions an operator can still decide: escalation does not take the choice away.
WAITING = (HealingStatus.AWAITING_APPROVAL, HealingStatus.ESCALATED)


class HealingActionError(Exception):
    """An action that cannot take this decision now (status says why)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class OwnStrategyHandler(Protocol):
    def approved(self, action: HealingAction) -> None: ...

    def rejected(self, action: HealingAction) -> None: ...


_own_handler: list[OwnStrategyHandler] = []


def own_strategy_handler(handler: OwnStrategyHandler) -> None:
    """Healing's own strategies are carried out by `handler` (healing.healer registers itself)."""
    _own_handler[:] = [handler]


def _carry_out(action: HealingAction, *, approved: bool) -> None:
    """The decision's effect, in the decision's transaction: an engine's handler or healing's own."""
    handler = outbound.strategy_handlers.get(action.strategy)
    if handler is None:
        own = _own_handler[0]
        (own.approved if approved else own.rejected)(action)
        return
    decision = outbound.Decision(
        action_id=action.pk,
        source_id=action.source_id,
        detail=action.detail,
        decided_by=action.decided_by,
        reason=action.reason,
    )
    try:
        (handler.approved if approved else handler.rejected)(decision)
    except outbound.DecisionRefusedError as exc:
        raise HealingActionError(exc.status, exc.detail) from None


def healing_event_add(
    action: HealingAction, *, kind: HealingEventKind, actor: str, note: str = "", detail: dict[str, Any] | None = None
) -> HealingEvent:
    """One step of the audit trail (who, when, why)."""
    return HealingEvent.objects.create(
        action=action, kind=kind, actor=actor, note=note, detail=detail or {}, at=timezone.now()
    )


def healing_action_request(
    *,
    source_id: int | None,
    strategy: str,
    risk: str,
    detail: dict[str, Any],
    failure_id: int | None = None,
    rca_id: int | None = None,
    category: str = "",
    strategy_version_id: int | None = None,
) -> tuple[HealingAction, bool]:
    """Ask an operator to approve `strategy`; False when an action already waits for it.

    A waiting action of the same strategy for the source takes the newer
    detail (what approving it would now act on) instead of a second action.
    """
    now = timezone.now()
    for _ in range(2):  # a concurrent first request can win the insert: then fold into it
        waiting = HealingAction.objects.filter(source=source_id, strategy=strategy, status__in=WAITING)
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
                    failure_id=failure_id,
                    rca_id=rca_id,
                    category=category,
                    strategy_version_id=strategy_version_id,
                    next_escalation_at=first_deadline(now, escalation_policy()),
                )
                healing_event_add(
                    action, kind=HealingEventKind.REQUESTED, actor="healing", note=str(detail.get("why", ""))
                )
        except IntegrityError:
            continue
        metrics.ACTIONS.labels(strategy=strategy, status="awaiting_approval").inc()
        log.info("healing_action_requested", action=action.pk, strategy=strategy, risk=risk, source=source_id)
        from healing.notify import escalation_notify

        action_id = action.pk
        transaction.on_commit(partial(escalation_notify, action_id=action_id, level=0))
        healing_wake()  # its escalation timer is new
        return action, True
    raise RuntimeError("could neither create nor find the waiting healing action")


@transaction.atomic
def healing_action_approve(*, action: HealingAction, actor: str, reason: str) -> HealingAction:
    """Approve a waiting action and start it. Raises HealingActionError (409) when it is not waiting,
    or when its strategy cannot start now; then nothing changes."""
    _decide(action, status=HealingStatus.APPROVED, actor=actor, reason=reason)
    healing_event_add(action, kind=HealingEventKind.APPROVED, actor=actor, note=reason)
    _carry_out(action, approved=True)
    metrics.DECISIONS.labels(decision="approved").inc()
    log.info("healing_action_approved", action=action.pk, strategy=action.strategy, actor=actor, reason=reason)
    action.refresh_from_db()
    return action


@transaction.atomic
def healing_action_reject(*, action: HealingAction, actor: str, reason: str) -> HealingAction:
    """Reject a waiting action: nothing runs; who and why are kept. Raises HealingActionError (409)."""
    _decide(action, status=HealingStatus.REJECTED, actor=actor, reason=reason)
    healing_event_add(action, kind=HealingEventKind.REJECTED, actor=actor, note=reason)
    _carry_out(action, approved=False)
    metrics.DECISIONS.labels(decision="rejected").inc()
    log.info("healing_action_rejected", action=action.pk, strategy=action.strategy, actor=actor, reason=reason)
    action.refresh_from_db()
    return action


def _decide(action: HealingAction, *, status: HealingStatus, actor: str, reason: str) -> None:
    now = timezone.now()
    # Compare-and-set: of two operators deciding at once, the first decides.
    decided = HealingAction.objects.filter(pk=action.pk, status__in=WAITING).update(
        status=status, decided_by=actor, decided_at=now, reason=reason, updated_at=now, next_escalation_at=None
    )
    if decided != 1:
        action.refresh_from_db()
        raise HealingActionError(409, f"The action is {action.status}, not awaiting approval.")
    action.refresh_from_db()
    healing_wake()  # what was approved runs now and is verified from here


def healing_action_progress(*, action_id: int, status: HealingStatus, outcome: dict[str, Any] | None = None) -> bool:
    """Move a decided action to running, succeeded or failed; False when it was not in progress."""
    fields: dict[str, Any] = {"status": status, "updated_at": timezone.now()}
    if outcome is not None:
        fields["outcome"] = outcome
    moved = HealingAction.objects.filter(pk=action_id, status__in=_IN_PROGRESS).update(**fields)
    if moved:
        kind = {
            HealingStatus.RUNNING: HealingEventKind.STARTED,
            HealingStatus.SUCCEEDED: HealingEventKind.SUCCEEDED,
            HealingStatus.FAILED: HealingEventKind.FAILED,
        }.get(status)
        if kind is not None:
            HealingEvent.objects.create(
                action_id=action_id, kind=kind, actor="healing", detail=outcome or {}, at=timezone.now()
            )
        metrics.ACTIONS.labels(strategy="", status=status.value).inc()
        log.info("healing_action_progress", action=action_id, status=status.value)
    return bool(moved)


def escalation_policy() -> Any:
    from django.conf import settings

    from healing.escalation import EscalationPolicy

    return EscalationPolicy(timeouts_s=tuple(settings.BEASTFLOW_ESCALATION_TIMEOUTS_S))


def stream_failure_report(*, source_id: int, health: dict[str, Any], signals: dict[str, Any], reason: str) -> None:
    """The monitor saw a push stream degrade: a failure named after its worst penalty."""
    from healing.streams import stream_failure_kind

    kind, path = stream_failure_kind(health.get("penalties") or {})
    failure_report(
        kind=kind,
        source_id=source_id,
        identity={"path": path},
        detail={"path": path, "reason": reason, "health": health, "signals": signals},
    )


def stream_gap_report(*, source_id: int, after_seq: int, missing: int, signals: dict[str, Any]) -> None:
    """A gap in the push stream that a targeted poll is about to fill."""
    failure_report(
        kind="stream_gaps",
        source_id=source_id,
        identity={"path": "push"},
        detail={"path": "push", "after_seq": after_seq, "missing": missing, "signals": signals},
    )
