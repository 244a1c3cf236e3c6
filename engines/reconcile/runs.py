"""Starting reconciliation runs: on demand, on the schedule, on an operator's approval.

A run row in `running` is the source's lease: the database allows one per
source (a partial unique index), so a second request gets the running one
back instead of starting another. The row is written before its task is
queued; a run whose worker died (or whose task was lost) stops beating and
is failed as abandoned, which frees the source.

Also the `full_reconcile` healing strategy, registered below with
engines.outbound.strategy_handler: approving re-runs the held run, with the
cap widened to what was approved; rejecting fails it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.db import IntegrityError, transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from engines import outbound, sending
from engines.models import ReconcileStatus, ReconcileTrigger, ReconciliationRun, Source
from engines.reconcile import policy
from engines.reconcile.engine import HEARTBEAT_S
from engines.schemas import Connector, ReconcileConfig

log = structlog.get_logger(__name__)

# A running run that has not beaten for this long lost its worker.
STALE_AFTER_S = max(300.0, HEARTBEAT_S * 10)
# Per tenant and tick: reconciliations are heavy, the rest waits a tick.
DISPATCH_LIMIT = 20
# Runs started by one tick are spread out, so sources configured alike do
# not all hit their upstreams and the database at once.
DISPATCH_STAGGER_S = 2.0
DISPATCH_STAGGER_MAX_S = 60.0
# A source whose run is running or held is looked at again this often by the scheduler.
BUSY_RECHECK_S = 60.0


class ReconcileError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def reconcile_request(
    *, source: Source, trigger: ReconcileTrigger, countdown: float | None = None
) -> tuple[ReconciliationRun, bool]:
    """Start a run of `source`; (the run, True), or (the running one, False).

    Raises ReconcileError (422) when the source has no snapshot to compare with.
    """
    if not has_snapshot(source):
        raise ReconcileError(422, "The source's connector config has no snapshot_url: nothing to reconcile against.")
    for _ in range(3):
        now = timezone.now()
        try:
            with transaction.atomic():
                run = ReconciliationRun.objects.create(source=source, trigger=trigger, started_at=now, heartbeat_at=now)
        except IntegrityError:  # one is running
            running = ReconciliationRun.objects.filter(source=source, status=ReconcileStatus.RUNNING).first()
            if running is not None:
                return running, False
            continue  # it finished in between: try again
        _queue(run.pk, countdown)
        log.info("reconcile_requested", source=source.pk, run=run.pk, trigger=trigger.value)
        return run, True
    raise ReconcileError(409, "The source's reconciliation keeps starting and finishing; try again.")


def reconciles_claim_due(
    *, limit: int = DISPATCH_LIMIT, source_ids: list[int] | None = None, stagger_s: float = DISPATCH_STAGGER_S
) -> list[int]:
    """Start the runs due in this tenant now; returns their ids.

    Due: not paused, a snapshot (`has_snapshot`), `reconcile.interval_s` > 0, no run
    running or awaiting approval (a held source waits for its operator),
    and one interval passed since its last run began (or since it was
    created). Most overdue first, at most `limit`. Abandoned runs are
    failed first, so their sources can start again. `source_ids`: only
    among these (the cross-tenant dispatcher's claim, which also limits how
    many start at once and so passes no stagger).
    """
    now = timezone.now()
    runs_abandon_stale(now=now)
    due_ids = [source.pk for source in _due(_candidates(source_ids), now)[:limit]]
    if not due_ids:
        return []
    started: list[int] = []
    with transaction.atomic():
        # Only the due rows are locked, and judged again under the lock: two
        # dispatchers of one tenant (a slow tick overlapping the next) split
        # them, and one whose list went stale (a run started and finished in
        # between) starts nothing twice.
        locked = _candidates().filter(pk__in=due_ids).select_for_update(skip_locked=True, of=("self",))
        for position, source in enumerate(_due(locked, now)):
            countdown = min(position * stagger_s, DISPATCH_STAGGER_MAX_S)
            run, created = reconcile_request(source=source, trigger=ReconcileTrigger.SCHEDULE, countdown=countdown)
            if created:
                started.append(run.pk)
    return started


def _candidates(source_ids: list[int] | None = None) -> QuerySet[Source]:
    last_started = ReconciliationRun.objects.filter(source=OuterRef("pk")).order_by("-started_at").values("started_at")
    busy = ReconciliationRun.objects.filter(
        status__in=[ReconcileStatus.RUNNING, ReconcileStatus.AWAITING_APPROVAL]
    ).values("source_id")
    sources = Source.objects.filter(paused=False)
    if source_ids is not None:
        sources = sources.filter(pk__in=source_ids)
    return sources.exclude(pk__in=busy).annotate(last_started=Subquery(last_started[:1]))


def reconcile_deadlines(source_ids: list[int]) -> dict[int, datetime | None]:
    """When each of these sources is next due for a scheduled run (None: never, as it is configured).

    What the public schedule should say (scheduling.models.SourceSchedule).
    A source with a run running or awaiting approval is looked at again
    after BUSY_RECHECK_S: its run may finish, or be abandoned, meanwhile.
    """
    now = timezone.now()
    deadlines: dict[int, datetime | None] = dict.fromkeys(source_ids)
    free = {source.pk: source for source in _candidates(source_ids)}
    for source_id, source in free.items():
        deadlines[source_id] = _due_at(source)
    busy = set(Source.objects.filter(pk__in=source_ids, paused=False).values_list("pk", flat=True)) - set(free)
    for source_id in busy:
        deadlines[source_id] = now + timedelta(seconds=BUSY_RECHECK_S)
    return deadlines


def _due(sources: Iterable[Any], now: datetime) -> list[Any]:
    """The due ones of `sources` (annotated with last_started), most overdue first."""
    due: list[tuple[datetime, Any]] = []
    for source in sources:
        at = _due_at(source)
        if at is not None and at <= now:
            due.append((at, source))
    due.sort(key=lambda pair: (pair[0], pair[1].pk))
    return [source for _, source in due]


def has_snapshot(source: Source) -> bool:
    """Is there an upstream truth to reconcile with: a snapshot_url, or a rest source's full listing."""
    return source.connector == Connector.REST.value or bool(source.config.get("snapshot_url"))


def reconcile_scheduled(source: Source) -> bool:
    """Does the source have scheduled runs at all: a snapshot, and `reconcile.interval_s` > 0.

    Only then does a change of the source make its reconcile deadline due
    (engines.sources, engines.source_ops). A deadline the dispatcher must
    visit to learn that there is none costs a round's slot: its claims are
    bounded by the reconcile queue's room (20 a round), so the ten thousand
    sources of a thousand new tenants without snapshots kept the rounds busy
    for over an hour before reaching one that could be reconciled.
    """
    return has_snapshot(source) and ReconcileConfig.model_validate(source.reconcile or {}).interval_s > 0


def _due_at(source: Any) -> datetime | None:
    if not has_snapshot(source):
        return None
    settings = ReconcileConfig.model_validate(source.reconcile or {})
    return policy.next_due(last_started=source.last_started, created=source.created_at, interval_s=settings.interval_s)


def runs_abandon_stale(*, now: datetime) -> int:
    """Fail the running runs that stopped beating; returns how many."""
    stale = list(
        ReconciliationRun.objects.filter(
            status=ReconcileStatus.RUNNING, heartbeat_at__lt=now - timedelta(seconds=STALE_AFTER_S)
        )
    )
    for run in stale:
        # Compare-and-set on the heartbeat: a run that beat meanwhile is alive after all.
        same = ReconciliationRun.objects.filter(
            pk=run.pk, status=ReconcileStatus.RUNNING, heartbeat_at=run.heartbeat_at
        )
        if same.update(
            status=ReconcileStatus.FAILED,
            finished_at=now,
            error_kind="abandoned",
            error=f"no sign of life from its worker for {STALE_AFTER_S:.0f} s",
        ):
            log.warning("reconcile_abandoned", source=run.source_id, run=run.pk, claimed=run.claimed_at is not None)
            if run.healing_action_id is not None:
                outbound.announce(
                    outbound.ApprovalProgress(
                        action_id=run.healing_action_id, status="failed", outcome={"run": run.pk, "abandoned": True}
                    )
                )
    return len(stale)


def _queue(run_id: int, countdown: float | None) -> None:
    # After commit: the worker must find the row (and a rolled-back row must not run).
    transaction.on_commit(lambda: sending.reconcile_task().apply_async(args=(run_id,), countdown=countdown or None))


# -- the full_reconcile healing strategy -----------------------------------------


def approved(action: outbound.Decision) -> None:
    """Re-run the held run with the approved scope (in the approval's transaction).

    Raises DecisionRefusedError (409) when the run is no longer held or
    another run of the source is running: then the approval is undone.
    """
    run = _held_run(action)
    now = timezone.now()
    try:
        with transaction.atomic():
            reopened = ReconciliationRun.objects.filter(pk=run.pk, status=ReconcileStatus.AWAITING_APPROVAL).update(
                status=ReconcileStatus.RUNNING,
                started_at=now,
                heartbeat_at=now,
                claimed_at=None,
                finished_at=None,
                error_kind="",
                error="",
                approved_ratio=float(action.detail.get("change_ratio") or 0.0),
                approved_empty=action.detail.get("hold_reason") == policy.HoldReason.EMPTY_SNAPSHOT,
                healing_action_id=action.action_id,
            )
    except IntegrityError:
        raise outbound.DecisionRefusedError(
            409, "A reconciliation of this source is running; approve again once it has finished."
        ) from None
    if reopened != 1:
        raise outbound.DecisionRefusedError(409, f"Run {run.pk} is no longer awaiting approval.")
    _queue(run.pk, None)


def rejected(action: outbound.Decision) -> None:
    """The held run ends as failed, with who rejected it and why."""
    run = _held_run(action)
    ReconciliationRun.objects.filter(pk=run.pk, status=ReconcileStatus.AWAITING_APPROVAL).update(
        status=ReconcileStatus.FAILED,
        error_kind="rejected",
        error=f"rejected by {action.decided_by}" + (f": {action.reason}" if action.reason else ""),
    )


def _held_run(action: outbound.Decision) -> ReconciliationRun:
    run_id = action.detail.get("run")
    run = None if run_id is None else ReconciliationRun.objects.filter(pk=run_id, source=action.source_id).first()
    if run is None or run.status != ReconcileStatus.AWAITING_APPROVAL:
        raise outbound.DecisionRefusedError(409, "The held reconciliation is no longer awaiting approval.")
    return run


class _FullReconcile:
    approved = staticmethod(approved)
    rejected = staticmethod(rejected)


outbound.strategy_handler("full_reconcile", _FullReconcile())
