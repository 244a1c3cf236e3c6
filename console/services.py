"""Operator actions from the console: each calls the engines' own service and writes an audit row.

Every action runs in one transaction with its OperatorAction row, carries
the request's correlation id (so the audit trail links the action to the
mode switch, poll or reconciliation it caused) and pushes the source's new
status to the live overview after commit.
"""

from __future__ import annotations

from typing import Any

import structlog
from django.db import transaction

from beastflow import correlation
from beastflow.tenancy import current_schema
from console import live
from console.models import OperatorAction, OperatorActionKind
from engines import source_ops
from engines.models import PollTrigger, ReconcileTrigger, Source
from engines.modes import Mode
from engines.reconcile import runs as reconcile_runs

log = structlog.get_logger(__name__)

MAX_REASON = 2000


class ActionError(Exception):
    """An action that cannot be carried out; the message says why, for the operator."""


def _audit(*, source: Source, actor: str, action: OperatorActionKind, reason: str, detail: dict[str, Any]) -> None:
    OperatorAction.objects.create(
        actor=actor,
        action=action,
        source=source,
        source_name=source.name,
        reason=reason,
        correlation_id=correlation.current() or "",
        detail=detail,
    )
    log.info("operator_action", actor=actor, action=action.value, source=source.pk, reason=reason, **detail)
    schema = current_schema()
    transaction.on_commit(lambda: live.sources_changed(schema, [source.pk]))


@transaction.atomic
def source_pause(*, source: Source, actor: str, reason: str) -> str:
    if source.paused or not source_ops.pause(source):
        raise ActionError(f"{source.name} is already paused.")
    _audit(source=source, actor=actor, action=OperatorActionKind.PAUSE, reason=reason, detail={})
    return f"Paused {source.name}: pushes are still stored, but the monitor and scheduled polls leave it alone."


@transaction.atomic
def source_resume(*, source: Source, actor: str, reason: str) -> str:
    if not source.paused or not source_ops.resume(source):
        raise ActionError(f"{source.name} is not paused.")
    _audit(source=source, actor=actor, action=OperatorActionKind.RESUME, reason=reason, detail={})
    return f"Resumed {source.name}."


@transaction.atomic
def source_poll_now(*, source: Source, actor: str, reason: str) -> str:
    _audit(source=source, actor=actor, action=OperatorActionKind.POLL_NOW, reason=reason, detail={})
    source_ops.request_poll(source.pk, PollTrigger.MANUAL)
    return f"Polling {source.name} now; the run appears under Polls in a moment."


@transaction.atomic
def source_reconcile_now(*, source: Source, actor: str, reason: str) -> str:
    try:
        run, created = reconcile_runs.reconcile_request(source=source, trigger=ReconcileTrigger.MANUAL)
    except reconcile_runs.ReconcileError as exc:
        raise ActionError(exc.detail) from exc
    detail = {"run": run.pk, "started": created}
    _audit(source=source, actor=actor, action=OperatorActionKind.RECONCILE_NOW, reason=reason, detail=detail)
    if not created:
        return f"Reconciliation run #{run.pk} of {source.name} is already running."
    return f"Reconciliation run #{run.pk} of {source.name} started."


@transaction.atomic
def source_force_mode(*, source: Source, actor: str, to: str, reason: str) -> str:
    """Put the source in a mode on an operator's say-so (engines.source_ops.force_mode), audited twice:
    the ModeSwitch row the engines write for every switch, and the operator's own row."""
    try:
        target = Mode(to)
    except ValueError:
        raise ActionError(f"Unknown mode {to!r}: choose event, hybrid or polling.")
    if not reason.strip():
        raise ActionError("Say why you force the mode: the reason goes into the audit trail.")
    if target is not Mode.POLLING and not source.push_expected:
        raise ActionError(
            f"{source.name} expects no push (push.expected is false): it runs in polling only. "
            "Set push.expected to true first."
        )
    forced = source_ops.force_mode(
        source, to=target, actor=actor, reason=f"{reason} (by {actor})", signals={"operator": actor}, with_health=True
    )
    if forced.decision.switch_to is None:
        raise ActionError(f"{source.name} is already in {target.value} mode.")
    if not forced.switched:
        raise ActionError(f"{source.name} changed mode meanwhile; look again and retry.")
    detail = {"from_mode": forced.from_mode, "to_mode": target.value}
    _audit(source=source, actor=actor, action=OperatorActionKind.FORCE_MODE, reason=reason, detail=detail)
    return f"{source.name} moved from {forced.from_mode} to {target.value}."


def operator_act(*, source: Source, actor: str, action: str, reason: str = "", mode: str = "") -> str:
    """Dispatch a console form to its action; returns what to tell the operator."""
    reason = reason.strip()[:MAX_REASON]
    if action == OperatorActionKind.PAUSE:
        return source_pause(source=source, actor=actor, reason=reason)
    if action == OperatorActionKind.RESUME:
        return source_resume(source=source, actor=actor, reason=reason)
    if action == OperatorActionKind.POLL_NOW:
        return source_poll_now(source=source, actor=actor, reason=reason)
    if action == OperatorActionKind.RECONCILE_NOW:
        return source_reconcile_now(source=source, actor=actor, reason=reason)
    if action == OperatorActionKind.FORCE_MODE:
        return source_force_mode(source=source, actor=actor, to=mode, reason=reason)
    raise ActionError(f"Unknown action {action!r}.")
