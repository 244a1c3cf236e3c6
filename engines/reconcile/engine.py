"""The ReconciliationEngine: find what push and poll both missed, and correct it.

docs/reconciliation.md. `reconcile_execute` runs one queued run in the
current tenant schema:

1. Claim the run (compare-and-set on `claimed_at`): a redelivered task finds
   it taken and does nothing.
2. Note the tenant's last change seq: a record changed after it changed
   during the run, and is never deleted on the snapshot's word.
3. Diff, applying nothing yet:
   - with digests: the upstream's 256 bucket digests against ours (one SQL
     aggregate); inside a differing bucket that holds many records, its 256
     sub-bucket digests likewise, where the upstream offers them (compared
     in SQL, so memory follows the drift); then only the (sub-)buckets that
     differ are fetched, so cost follows the drift too;
   - without digests (or when the upstream has none): every snapshot page,
     the next one fetched while the current one is compared; a `rest`
     source's snapshot is its full listing (engines/connectors/rest.py), read the same
     way, a page at a time.
   Each page is compared by (key, version, hash) with the local rows of its
   keys; corrections wait in a temporary table. Then the live local records
   of the fetched scope that the snapshot did not show become deletes.
4. Decide: an upstream failure anywhere fails the run; an empty snapshot or
   a diff past the safety cap holds it for approval (a healing action with
   the diff summary). Either way nothing has been applied.
5. Apply: the corrections in key order, in batches, each batch one commit
   through the ingest commit path (origin `reconcile`), so the version check
   there keeps any push that overtook the diff, and the changes reach the
   feed, websockets and callbacks like any other.
6. Record the run, report the drift as a `reconciliation_drift` failure
   (which keys, and whether a mode switch happened shortly before), count,
   log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from celery.exceptions import SoftTimeLimitExceeded
from django.db import connection, transaction
from django.utils import timezone
from prometheus_client import Counter, Histogram

from beastflow.tenancy import current_schema
from engines import outbound
from engines.connectors.http import ErrorKind, SnapshotPage, UpstreamError, fetch_digests, upstream_host
from engines.connectors.rest import host_of, snapshot_items
from engines.ingest import service
from engines.ingest.commit import PendingBatch
from engines.ingest.validation import Event
from engines.models import (
    ModeSwitch,
    Origin,
    ReconcileMode,
    ReconcileStatus,
    ReconciliationRun,
    Source,
)
from engines.publish import changes_committed
from engines.reconcile import diff, policy, store
from engines.reconcile.upstream import Item, checked, prefetched, snapshot_pages
from engines.schemas import CONNECTOR_CONFIGS, Connector, HttpConnectorConfig, ReconcileConfig, RestConnectorConfig

log = structlog.get_logger(__name__)

# The run's row is touched this often while it works; a running run silent
# for STALE_AFTER_S lost its worker (engines/reconcile/runs.py).
HEARTBEAT_S = 10.0
# A mode switch this long before a drift (in reconcile intervals) is where
# the drift most likely slipped in; without a schedule, a fixed window.
SWITCH_WINDOW_INTERVALS = 2.0
SWITCH_WINDOW_DEFAULT_S = 600.0
RECONCILE_FAILURE_KINDS = tuple(kind.value for kind in ErrorKind)
# The healing strategy a run held past its safety cap asks an operator for
# (healing's HealingStrategy.FULL_RECONCILE; carried out by engines/reconcile/runs.py).
FULL_RECONCILE = "full_reconcile"

RUNS = Counter("beastflow_reconciliations_total", "Reconciliation runs by outcome", ["status", "mode"])
DRIFT = Counter("beastflow_reconcile_drift_total", "Records found drifted by reconciliation", ["kind"])
CORRECTIONS = Counter("beastflow_reconcile_corrections_total", "Changes committed by reconciliation")
FETCHED = Counter("beastflow_reconcile_records_fetched_total", "Snapshot records fetched by reconciliation")
RUN_SECONDS = Histogram(
    "beastflow_reconcile_duration_seconds",
    "Time of one reconciliation run",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)


@dataclass(frozen=True)
class Tuning:
    """Knobs with sound defaults; tests and the bench turn them."""

    # A differing bucket with at least this many local records is narrowed
    # down by its sub-bucket digests (one request) before records are fetched.
    descend_min_records: int = 256
    apply_batch: int = 500
    # Page size asked of the upstream; None: the connector's page_limit.
    page_limit: int | None = None


DEFAULT_TUNING = Tuning()


@dataclass
class _Progress:
    mode: str = ""
    pages: int = 0
    records: int = 0
    digest_root: str = ""
    local_digest_root: str = ""
    buckets_differing: int | None = None
    corrections: int = 0
    tally: diff.Tally = field(default_factory=diff.Tally)
    last_beat: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class _Job:
    run_id: int
    source_id: int
    schema: str
    config: HttpConnectorConfig | RestConnectorConfig
    settings: ReconcileConfig
    safety: policy.SafetyPolicy
    approval_id: int | None
    data_check: Callable[[dict[str, Any]], str | None] | None
    tuning: Tuning
    started_at: datetime
    started: float  # monotonic

    @property
    def http(self) -> HttpConnectorConfig:
        """The docs/contract.md §6 upstream's config (digests, snapshot pages); a rest source never gets here."""
        assert isinstance(self.config, HttpConnectorConfig)
        return self.config

    @property
    def page_limit(self) -> int:
        return self.tuning.page_limit or self.http.page_limit


class _SourceGoneError(Exception):
    """The source was deleted while it was reconciled."""


def reconcile_execute(*, run_id: int, tuning: Tuning = DEFAULT_TUNING) -> ReconciliationRun | None:
    """Execute a queued run now. None when there was nothing to do.

    Nothing to do: the run is gone, no longer `running` (abandoned or
    finished), or claimed by another task. Otherwise the run says what
    happened, an upstream failure included (an outcome, not an exception).
    Call it outside any transaction: each batch of corrections must be
    committed, and visible, as soon as it is written.
    """
    job = _claim(run_id, tuning)
    if job is None:
        return None
    progress = _Progress()
    try:
        with store.Workspace(store.raw_cursor(), run_id) as workspace:
            try:
                _diff(job, workspace, progress)
            except UpstreamError as exc:
                return _failed(job, progress, exc)
            tally = progress.tally
            decision = policy.decide(
                upstream=tally.upstream, local=tally.local, destructive=tally.destructive, policy=job.safety
            )
            if not decision.apply:
                return _held(job, progress, decision)
            _apply(job, workspace, progress)
        return _succeeded(job, progress)
    except _SourceGoneError:
        log.info("reconcile_source_gone", source=job.source_id, run=job.run_id)
        return None
    except SoftTimeLimitExceeded:
        _finish(job, progress, ReconcileStatus.FAILED, error_kind="time_limit", error="the run hit its time limit")
        raise
    except Exception as exc:  # a bug: the run must not stay `running` until it is judged abandoned
        _finish(job, progress, ReconcileStatus.FAILED, error_kind="internal", error=f"{type(exc).__name__}: {exc}")
        raise


# -- claim -----------------------------------------------------------------------


def _claim(run_id: int, tuning: Tuning) -> _Job | None:
    now = timezone.now()
    # Compare-and-set: of two deliveries of one task, one claims the run.
    taken = ReconciliationRun.objects.filter(pk=run_id, status=ReconcileStatus.RUNNING, claimed_at__isnull=True).update(
        claimed_at=now, started_at=now, heartbeat_at=now
    )
    if taken != 1:
        return None
    run = ReconciliationRun.objects.select_related("source").get(pk=run_id)
    try:
        job = _job(run, tuning, now)
    except Exception as exc:  # a source config the engine cannot read: the run ends here, not as abandoned
        ReconciliationRun.objects.filter(pk=run_id).update(
            status=ReconcileStatus.FAILED, finished_at=timezone.now(), error_kind="internal", error=str(exc)[:2000]
        )
        raise
    if run.healing_action_id is not None:
        outbound.announce(outbound.ApprovalProgress(action_id=run.healing_action_id, status="running"))
    return job


def _job(run: ReconciliationRun, tuning: Tuning, now: datetime) -> _Job:
    source: Source = run.source
    config = CONNECTOR_CONFIGS[Connector(source.connector)].model_validate(source.config)
    settings = ReconcileConfig.model_validate(source.reconcile or {})
    return _Job(
        run_id=run.pk,
        source_id=source.pk,
        schema=current_schema(),
        config=config,
        settings=settings,
        safety=policy.safety_policy(
            max_change_ratio=settings.max_change_ratio,
            approved_ratio=run.approved_ratio,
            approved_empty=run.approved_empty,
        ),
        approval_id=run.healing_action_id,
        data_check=service.data_schema_check(source.data_schema) if source.data_schema else None,
        tuning=tuning,
        started_at=now,
        started=time.monotonic(),
    )


# -- diff ------------------------------------------------------------------------


def _diff(job: _Job, workspace: store.Workspace, progress: _Progress) -> None:
    if isinstance(job.config, RestConnectorConfig):
        _diff_listing(job, job.config, workspace, progress)
        return
    if job.config.snapshot_url is None:
        url = str(job.config.poll_url)
        raise UpstreamError(
            ErrorKind.REQUEST_REJECTED, "the source's connector config has no snapshot_url", host=upstream_host(url)
        )
    start_seq = store.last_seq(workspace.cursor)
    scope = _diff_by_digests(job, workspace, progress) if job.config.digests else None
    if scope is None:
        progress.mode = ReconcileMode.FULL
        progress.tally.local = store.live_count(workspace.cursor, job.source_id)
        for page in snapshot_pages(job.http, limit=job.page_limit, prefetch=True):
            _compare_page(job, workspace, progress, page)
        progress.tally.upstream = progress.records
    if scope != []:  # every bucket equal: nothing can be gone
        deleted, in_flight, sample = workspace.add_deletes(job.source_id, start_seq=start_seq, buckets=scope)
        progress.tally.deleted += deleted
        progress.tally.in_flight += in_flight
        progress.tally.sample("deleted", sample)


def _diff_listing(job: _Job, config: RestConnectorConfig, workspace: store.Workspace, progress: _Progress) -> None:
    """A rest source: the full listing, a page at a time, then what it did not show is gone.

    No digests and no key order are needed: each page is compared with the
    local rows of its keys and its keys are marked seen in a temporary table
    (engines/reconcile/store.py), so memory stays that of a page (and the one
    prefetched) whatever the listing's size.
    """
    start_seq = store.last_seq(workspace.cursor)
    progress.mode = ReconcileMode.FULL
    progress.tally.local = store.live_count(workspace.cursor, job.source_id)
    for items, _status in prefetched(snapshot_items(config, data_check=job.data_check)):
        _compare_items(job, workspace, progress, [Item(i.key, i.version, i.hash, i.data) for i in items])
    progress.tally.upstream = progress.records
    deleted, in_flight, sample = workspace.add_deletes(job.source_id, start_seq=start_seq, buckets=None)
    progress.tally.deleted += deleted
    progress.tally.in_flight += in_flight
    progress.tally.sample("deleted", sample)


def _diff_by_digests(job: _Job, workspace: store.Workspace, progress: _Progress) -> list[str] | None:
    """Fetch only what differs; returns the buckets fetched, or None when the upstream has no digests."""
    try:
        upstream = fetch_digests(job.http)
    except UpstreamError as exc:
        if exc.kind is ErrorKind.REQUEST_REJECTED:  # 400/404: no digests here, a full snapshot instead
            log.info("reconcile_no_digests", source=job.source_id, error=exc.detail)
            return None
        raise
    progress.mode = ReconcileMode.DIGEST
    local = store.local_buckets(workspace.cursor, job.source_id)
    progress.digest_root = diff.digest_root(upstream)
    progress.local_digest_root = diff.digest_root(
        {b: local[b].digest if b in local else diff.EMPTY_DIGEST for b in diff.BUCKETS}
    )
    differing = diff.differing(upstream, {name: state.digest for name, state in local.items()})
    progress.buckets_differing = len(differing)
    progress.tally.local = sum(state.count for state in local.values())
    unchanged = progress.tally.local - sum(local[b].count for b in differing if b in local)

    large = [b for b in differing if b in local and local[b].count >= job.tuning.descend_min_records]
    scope = [b for b in differing if b not in large]
    if large:
        narrowed, unchanged_inside, whole = _narrow(job, workspace, progress, large)
        scope += narrowed + whole
        unchanged += unchanged_inside
    for bucket in sorted(scope):
        for page in snapshot_pages(job.http, limit=job.page_limit, bucket=bucket):
            _compare_page(job, workspace, progress, page)
    progress.tally.upstream = unchanged + progress.records
    return scope


def _narrow(
    job: _Job, workspace: store.Workspace, progress: _Progress, buckets: list[str]
) -> tuple[list[str], int, list[str]]:
    """The differing sub-buckets of `buckets`, the local records in their equal ones,
    and the buckets to fetch whole because the upstream has no sub-bucket digests."""
    whole: list[str] = []
    for position, bucket in enumerate(buckets):
        try:
            workspace.add_sub_digests(fetch_digests(job.http, bucket=bucket))
        except UpstreamError as exc:
            if exc.kind is ErrorKind.REQUEST_REJECTED:  # an upstream with docs/contract.md §6 digests only
                whole = buckets[position:]
                break
            raise
        _beat(job, progress)
    if len(whole) == len(buckets):
        return [], 0, whole
    narrowed, unchanged = workspace.differing_sub_buckets(job.source_id, empty_digest=diff.EMPTY_DIGEST)
    return narrowed, unchanged, whole


def _compare_page(job: _Job, workspace: store.Workspace, progress: _Progress, page: SnapshotPage) -> None:
    _compare_items(job, workspace, progress, checked(job.http, page, job.data_check))


def _compare_items(job: _Job, workspace: store.Workspace, progress: _Progress, items: list[Item]) -> None:
    progress.pages += 1
    progress.records += len(items)
    if items:
        local = workspace.lookup(job.source_id, [item.key for item in items])
        upserts = []
        for item in items:
            verdict = diff.compare(item.version, item.hash, local.get(item.key))
            progress.tally.add(verdict, item.key)
            if verdict in diff.CORRECTED:
                upserts.append((item.key, item.version, item.data))
        workspace.add_upserts(upserts)
    _beat(job, progress)


# -- apply -----------------------------------------------------------------------


def _apply(job: _Job, workspace: store.Workspace, progress: _Progress) -> None:
    for batch in workspace.corrections(job.tuning.apply_batch):
        events = [
            Event(
                id=diff.correction_event_id(job.run_id, correction.key, correction.version),
                type=correction.type,
                key=correction.key,
                version=correction.version,
                data=correction.data,
                seq=None,
                occurred_at=None,
            )
            for correction in batch
        ]
        with transaction.atomic(), connection.cursor() as cursor:
            [result] = service.commit(
                cursor, [PendingBatch(source_id=job.source_id, events=events, origin=Origin.RECONCILE.value)]
            )
            if result.source_missing:
                raise _SourceGoneError
            _publish_after_commit(job.schema, result.changes)
        progress.corrections += len(result.changes)
        _beat(job, progress)


def _publish_after_commit(schema: str, changes: list[dict[str, Any]]) -> None:
    if changes:
        transaction.on_commit(lambda: changes_committed(schema, changes))


# -- outcomes --------------------------------------------------------------------


def _succeeded(job: _Job, progress: _Progress) -> ReconciliationRun | None:
    tally = progress.tally
    run = _finish(job, progress, ReconcileStatus.SUCCEEDED)
    if run is None:
        return None
    for kind in RECONCILE_FAILURE_KINDS:
        outbound.announce(outbound.FailureCleared(source_id=job.source_id, kind=kind, identity=_failure_identity(job)))
    if progress.corrections or tally.conflicts:
        _report_drift(job, run, progress)
    else:
        outbound.announce(outbound.FailureCleared(source_id=job.source_id, kind="reconciliation_drift"))
    if job.approval_id is not None:
        outbound.announce(
            outbound.ApprovalProgress(action_id=job.approval_id, status="succeeded", outcome=_outcome(run, progress))
        )
    for kind in ("missing", "changed", "deleted"):
        DRIFT.labels(kind).inc(getattr(tally, kind))
    CORRECTIONS.inc(progress.corrections)
    log.info(
        "reconcile_finished",
        source=job.source_id,
        run=job.run_id,
        mode=progress.mode,
        **tally.counts(),
        corrections=progress.corrections,
        buckets_differing=progress.buckets_differing,
        pages=progress.pages,
        records_fetched=progress.records,
        duration_ms=run.duration_ms,
    )
    return run


def _held(job: _Job, progress: _Progress, decision: policy.Decision) -> ReconciliationRun | None:
    """Nothing applied: the dry-run diff goes to an operator as a healing action."""
    run = _finish(
        job, progress, ReconcileStatus.AWAITING_APPROVAL, error_kind=str(decision.reason), error=decision.detail
    )
    if run is None:
        return None
    summary = diff.summary(
        progress.tally,
        run=run.pk,
        mode=progress.mode,
        hold_reason=str(decision.reason),
        hold_detail=decision.detail,
        max_change_ratio=job.safety.max_change_ratio,
        digest_root=progress.digest_root or None,
    )
    if job.approval_id is not None:  # the approved run's fresh diff went past what was approved
        outbound.announce(
            outbound.ApprovalProgress(
                action_id=job.approval_id,
                status="failed",
                outcome={**_outcome(run, progress), "held_again": decision.detail},
            )
        )
    # An older held run of the source is answered by this one's action.
    ReconciliationRun.objects.filter(source_id=job.source_id, status=ReconcileStatus.AWAITING_APPROVAL).exclude(
        pk=run.pk
    ).update(status=ReconcileStatus.FAILED, error_kind="superseded", error=f"superseded by run {run.pk}")
    answer = outbound.approval_request(
        outbound.ApprovalNeeded(source_id=job.source_id, strategy=FULL_RECONCILE, risk="high", detail=summary)
    )
    log.warning(
        "reconcile_held",
        source=job.source_id,
        run=job.run_id,
        reason=str(decision.reason),
        detail=decision.detail,
        healing_action=answer.action_id,
        new_action=answer.created,
        **progress.tally.counts(),
    )
    return run


def _failed(job: _Job, progress: _Progress, error: UpstreamError) -> ReconciliationRun | None:
    """Nothing applied: an incomplete snapshot says nothing about what is gone."""
    run = _finish(job, progress, ReconcileStatus.FAILED, error_kind=error.kind.value, error=error.detail)
    if run is None:
        return None
    outbound.announce(
        outbound.FailureObserved(
            kind=error.kind.value,
            source_id=job.source_id,
            identity=_failure_identity(job),
            detail={
                "engine": "reconcile",
                "run": run.pk,
                "error": error.detail,
                "host": error.host,
                "http_status": error.http_status,
                "retry_after_s": error.retry_after_s,
                "errors": error.errors[:5],
                "pages_fetched": progress.pages,
                "records_fetched": progress.records,
            },
        )
    )
    if job.approval_id is not None:
        outbound.announce(
            outbound.ApprovalProgress(action_id=job.approval_id, status="failed", outcome=_outcome(run, progress))
        )
    log.warning(
        "reconcile_failed",
        source=job.source_id,
        run=job.run_id,
        kind=error.kind.value,
        host=error.host,
        http_status=error.http_status,
        error=error.detail,
        pages=progress.pages,
    )
    return run


def _finish(
    job: _Job, progress: _Progress, status: ReconcileStatus, *, error_kind: str = "", error: str = ""
) -> ReconciliationRun | None:
    tally = progress.tally
    duration_s = time.monotonic() - job.started
    updated = ReconciliationRun.objects.filter(pk=job.run_id).update(
        status=status,
        finished_at=timezone.now(),
        heartbeat_at=timezone.now(),
        mode=progress.mode,
        upstream_count=tally.upstream,
        local_count=tally.local,
        missing=tally.missing,
        changed=tally.changed,
        deleted=tally.deleted,
        in_flight=tally.in_flight,
        conflicts=tally.conflicts,
        corrections=progress.corrections,
        digest_root=progress.digest_root,
        local_digest_root=progress.local_digest_root,
        buckets_differing=progress.buckets_differing,
        pages_fetched=progress.pages,
        records_fetched=progress.records,
        duration_ms=round(duration_s * 1000, 1),
        max_change_ratio=job.safety.max_change_ratio,
        error_kind=error_kind,
        error=error,
        samples=tally.samples,
    )
    RUNS.labels(status.value, progress.mode or "none").inc()
    RUN_SECONDS.observe(duration_s)
    FETCHED.inc(progress.records)
    if updated != 1:  # the source, and its runs with it, were deleted meanwhile
        return None
    return ReconciliationRun.objects.get(pk=job.run_id)


def _report_drift(job: _Job, run: ReconciliationRun, progress: _Progress) -> None:
    """Drift is a failure for RCA: which keys both push and poll missed, and when."""
    window_s = (
        job.settings.interval_s * SWITCH_WINDOW_INTERVALS if job.settings.interval_s > 0 else SWITCH_WINDOW_DEFAULT_S
    )
    since = job.started_at - timedelta(seconds=window_s)
    switches = list(
        ModeSwitch.objects.filter(source_id=job.source_id, at__gte=since, at__lte=job.started_at).order_by("-at")[:5]
    )
    mode = Source.objects.filter(pk=job.source_id).values_list("mode", flat=True).first()
    outbound.announce(
        outbound.FailureObserved(
            kind="reconciliation_drift",
            source_id=job.source_id,
            detail=diff.summary(
                progress.tally,
                run=run.pk,
                corrections=progress.corrections,
                mode=mode,
                in_mode_switch_window=bool(switches),
                mode_switch_window_s=window_s,
                mode_switches=[
                    {"from_mode": s.from_mode, "to_mode": s.to_mode, "at": s.at.isoformat(), "reason": s.reason}
                    for s in switches
                ],
            ),
        )
    )


def _failure_identity(job: _Job) -> dict[str, Any]:
    if isinstance(job.config, RestConnectorConfig):
        return {"engine": "reconcile", "host": host_of(job.config)}
    url = str(job.config.snapshot_url or job.config.poll_url)
    return {"engine": "reconcile", "host": upstream_host(url)}


def _outcome(run: ReconciliationRun, progress: _Progress) -> dict[str, Any]:
    return {"run": run.pk, "status": run.status, "corrections": progress.corrections, **progress.tally.counts()}


def _beat(job: _Job, progress: _Progress) -> None:
    """Keep the run visibly alive (at most every HEARTBEAT_S)."""
    now = time.monotonic()
    if now - progress.last_beat < HEARTBEAT_S:
        return
    progress.last_beat = now
    ReconciliationRun.objects.filter(pk=job.run_id, status=ReconcileStatus.RUNNING).update(heartbeat_at=timezone.now())
