"""The PollingEngine: poll a source's change feed and commit what push missed.

DESIGN.md "Polling". `source_poll` runs in the current tenant schema:

1. Take the source's lease (compare-and-set on `poll_lease_until`); when
   another poll holds it there is nothing to do.
2. Ask the upstream host's circuit breaker; while it is open the run is
   skipped and the next poll is due when the breaker may let a probe through.
3. Page the feed from `StreamState.contiguous_seq`: each page is validated
   like a push and committed through the one commit path (origin `poll`) in
   its own transaction, so progress is kept page by page. Paging stops when
   `has_more` is false, the page budget or the time budget is spent, or a
   call fails.
4. Tell the breaker, plan the next poll (adaptive interval, or backoff with
   jitter honouring Retry-After), report the failure or resolve earlier ones.
5. Write the PollRun, log, count, release the lease.

`polls_claim_due` picks the sources the scheduler should poll now.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import redis
import structlog
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from prometheus_client import Counter, Histogram

from beastflow.redis_client import get_redis, key
from beastflow.tenancy import current_schema
from engines.connectors import ErrorKind, FeedPage, UpstreamError, fetch_changes, upstream_host
from engines.ingest import service
from engines.ingest.commit import BatchResult, PendingBatch
from engines.ingest.validation import Event, validate
from engines.models import ModeChoices, Origin, PollRun, PollStatus, PollTrigger, Source, StreamState
from engines.polling_policy import (
    BreakerCheck,
    BreakerPolicy,
    BreakerState,
    PollPlan,
    PollPolicy,
    PollState,
    after_error,
    after_success,
    breaker_check,
    breaker_record,
)
from engines.publish import changes_committed
from engines.schemas import CONNECTOR_CONFIGS, Connector, HttpConnectorConfig, PollConfig
from healing.services import failure_report, failure_resolve

log = structlog.get_logger(__name__)

R = TypeVar("R")

# A poll starts no new page past this (pages already committed are kept), so
# that it ends well inside the Celery time limits and the lease.
POLL_TIME_BUDGET_S = 60.0
# The lease outlives the longest poll: the budget, one more request, commits.
LEASE_MARGIN_S = 30.0
BREAKER_POLICY = BreakerPolicy()
# Breaker state is soft: an expired key is a closed breaker.
BREAKER_TTL_S = 3_600
# The scheduler holds a claimed source this long: a poll queued but not yet
# started is not sent again meanwhile, and a lost one is retried after it.
DISPATCH_CLAIM_S = 30.0
# Per tenant and tick, so one tenant's thousand due sources cannot fill the
# queue ahead of the other tenants (DESIGN.md "Tenancy": fair sharing).
DISPATCH_LIMIT = 500
# Failure kinds a poll reports; a successful poll resolves them.
POLL_FAILURE_KINDS = tuple(kind.value for kind in ErrorKind)
FAILURE_DETAIL_ERRORS = 5

POLLS = Counter("beastflow_polls_total", "Polls of upstream change feeds", ["status", "error_kind"])
POLLED_EVENTS = Counter(
    "beastflow_polled_events_total", "Events fetched by polls", ["outcome"]
)  # new (push had missed it) | duplicate
POLL_SECONDS = Histogram(
    "beastflow_poll_duration_seconds",
    "Time of one poll, all pages",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


@dataclass
class _Progress:
    """What a poll has done so far; `to_seq` is where the next page starts."""

    from_seq: int
    to_seq: int
    pages: int = 0
    events: int = 0
    new_events: int = 0
    duplicates: int = 0
    changes: int = 0
    has_more: bool = True
    http_status: int | None = None
    source_gone: bool = False


@dataclass(frozen=True)
class _Job:
    """A leased source and everything its poll needs, read once."""

    source_id: int
    trigger: PollTrigger
    schema: str
    config: HttpConnectorConfig
    host: str
    policy: PollPolicy
    page_budget: int
    state: PollState
    data_check: Callable[[dict[str, Any]], str | None] | None
    started_at: datetime
    started: float  # monotonic


def source_poll(*, source_id: int, trigger: str) -> PollRun | None:
    """Poll one source now. None when there was nothing to do.

    Nothing to do: the source is gone, it is paused (scheduled polls only),
    or another poll holds its lease. Otherwise the returned PollRun says what
    happened, failures included (an upstream failure is an outcome, not an
    exception). Call it outside any transaction: the lease and each page's
    commit must be visible to other workers as soon as they are written.
    """
    why = PollTrigger(trigger)  # ValueError on an unknown trigger
    source = Source.objects.filter(pk=source_id).first()
    if source is None:  # deleted after the poll was queued
        return None
    if source.paused and why == PollTrigger.SCHEDULE:
        return None
    timeout_s = _connector_config(source).timeout_s
    lease_until = _lease(source_id, seconds=max(POLL_TIME_BUDGET_S, timeout_s) + LEASE_MARGIN_S)
    if lease_until is None:
        return None
    try:
        # Read again under the lease: a poll that finished meanwhile moved poll_state on.
        leased = Source.objects.filter(pk=source_id).first()
        return None if leased is None else _poll_leased(_job(leased, why))
    finally:
        _release(source_id, lease_until)


def polls_claim_due(*, limit: int = DISPATCH_LIMIT, claim_s: float = DISPATCH_CLAIM_S) -> list[int]:
    """The sources of this tenant due for a scheduled poll, claimed for `claim_s`.

    Due: not paused, in hybrid or polling mode, `next_poll_at` unset or
    past, no live lease. Most overdue first. Claiming pushes `next_poll_at`
    ahead, so the next scheduler tick does not send them again while their
    polls wait in the queue; each poll sets the real next time when it ends.
    """
    now = timezone.now()
    with transaction.atomic():
        due = (
            Source.objects.filter(paused=False, mode__in=[ModeChoices.HYBRID, ModeChoices.POLLING])
            .filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now))
            .filter(Q(poll_lease_until__isnull=True) | Q(poll_lease_until__lt=now))
            .order_by(F("next_poll_at").asc(nulls_first=True), "pk")
            # Two dispatchers of one tenant (a slow tick overlapping the next)
            # split the due sources instead of both sending them.
            .select_for_update(skip_locked=True)
        )
        ids = list(due.values_list("pk", flat=True)[:limit])
        if ids:
            Source.objects.filter(pk__in=ids).update(next_poll_at=now + timedelta(seconds=claim_s))
    return ids


# -- lease -----------------------------------------------------------------------


def _lease(source_id: int, *, seconds: float) -> datetime | None:
    """Own the source until the returned time, or None when another poll owns it."""
    now = timezone.now()
    until = now + timedelta(seconds=seconds)
    # Compare-and-set: of two workers racing, the UPDATE of the second finds
    # the lease live (it waits for the first's row lock, then re-checks).
    taken = (
        Source.objects.filter(pk=source_id)
        .filter(Q(poll_lease_until__isnull=True) | Q(poll_lease_until__lt=now))
        .update(poll_lease_until=until)
    )
    return until if taken == 1 else None


def _release(source_id: int, lease_until: datetime) -> None:
    # Only our own lease: if ours expired and another poll took the source,
    # its lease must survive our late finish.
    Source.objects.filter(pk=source_id, poll_lease_until=lease_until).update(poll_lease_until=None)


# -- the poll --------------------------------------------------------------------


def _connector_config(source: Source) -> HttpConnectorConfig:
    # `http` and `simulator` speak the same protocol (CONTRACT §6).
    config = CONNECTOR_CONFIGS[Connector(source.connector)].model_validate(source.config)
    if not isinstance(config, HttpConnectorConfig):
        raise NotImplementedError(f"connector {source.connector} is not polled through the change feed")
    return config


def _job(source: Source, trigger: PollTrigger) -> _Job:
    config = _connector_config(source)
    poll = PollConfig.model_validate(source.poll or {})
    return _Job(
        source_id=source.pk,
        trigger=trigger,
        schema=current_schema(),
        config=config,
        host=upstream_host(str(config.poll_url)),
        policy=PollPolicy(min_interval_s=poll.min_interval_s, max_interval_s=poll.max_interval_s),
        page_budget=poll.page_budget,
        state=PollState.from_dict(source.poll_state or {}),
        # Polled events pass the same checks as pushed ones, the source's data schema included.
        data_check=service.data_schema_check(source.data_schema) if source.data_schema else None,
        started_at=timezone.now(),
        started=time.monotonic(),
    )


def _poll_leased(job: _Job) -> PollRun | None:
    check = breaker_allow(job.host)
    if not check.allowed:
        return _skip(job, retry_in_s=check.retry_in_s)
    # Read under the lease: where the previous poll (or push) got to.
    contiguous = StreamState.objects.filter(pk=job.source_id).values_list("contiguous_seq", flat=True).first()
    progress = _Progress(from_seq=contiguous or 0, to_seq=contiguous or 0)
    error: UpstreamError | None = None
    try:
        _page_through(job, progress)
    except UpstreamError as exc:
        error = exc
        progress.http_status = exc.http_status
    breaker_report(job.host, ok=error is None or not error.host_down)
    if progress.source_gone:  # deleted while we polled: nothing left to record on
        return None
    if error is None:
        return _succeeded(job, progress)
    return _failed(job, progress, error)


def _page_through(job: _Job, progress: _Progress) -> None:
    deadline = job.started + POLL_TIME_BUDGET_S
    while progress.has_more and progress.pages < job.page_budget and not progress.source_gone:
        if progress.pages and time.monotonic() + job.config.timeout_s > deadline:
            break  # the next page might not end in time; the next poll continues
        page = fetch_changes(job.config, after=progress.to_seq, limit=job.config.page_limit)
        progress.http_status = page.http_status
        events = _checked(job, page, after=progress.to_seq)
        result = _commit_page(job, events) if events else BatchResult()
        heartbeats = sum(1 for event in events if event.type == "heartbeat")
        progress.pages += 1
        progress.events += len(events) - heartbeats
        progress.new_events += result.accepted - heartbeats
        progress.duplicates += result.duplicates
        progress.changes += len(result.changes)
        progress.to_seq = max([progress.to_seq, *_seqs(events)])
        progress.has_more = page.has_more
        progress.source_gone = result.source_missing


def _checked(job: _Job, page: FeedPage, *, after: int) -> list[Event]:
    """The page's events validated like a push; a page with any invalid event is refused whole."""
    batch = validate(page.events, data_check=job.data_check)
    if batch.errors:
        raise UpstreamError(
            ErrorKind.SCHEMA_INVALID,
            f"{len({e.get('index') for e in batch.errors})} invalid event(s) in the page after seq {after}: "
            f"{batch.errors[0].get('index')}: {batch.errors[0]['message']}",
            host=job.host,
            http_status=page.http_status,
            errors=batch.errors[:FAILURE_DETAIL_ERRORS],
        )
    raw_seqs = [event.seq for event in batch.events if event.type != "heartbeat"]
    seqs = [seq for seq in raw_seqs if seq is not None]
    # Paging by seq relies on CONTRACT §6: seq present, ascending, all > after.
    if len(seqs) != len(raw_seqs) or any(seq <= after for seq in seqs) or seqs != sorted(set(seqs)):
        raise UpstreamError(
            ErrorKind.SCHEMA_INVALID,
            f"the page after seq {after} breaks the feed's order (every event needs a seq > after, ascending)",
            host=job.host,
            http_status=page.http_status,
        )
    if page.has_more and not seqs:
        # Asking again from the same seq would get the same page forever.
        raise UpstreamError(
            ErrorKind.SCHEMA_INVALID,
            f"the page after seq {after} says has_more but brings no event",
            host=job.host,
            http_status=page.http_status,
        )
    return batch.events


def _seqs(events: list[Event]) -> list[int]:
    # A heartbeat's seq is the upstream's head, not a position in this page.
    return [event.seq for event in events if event.seq is not None and event.type != "heartbeat"]


def _commit_page(job: _Job, events: list[Event]) -> BatchResult:
    with transaction.atomic(), connection.cursor() as cursor:
        [result] = service.commit(
            cursor, [PendingBatch(source_id=job.source_id, events=events, origin=Origin.POLL.value)]
        )
        if result.changes:
            schema, changes = job.schema, result.changes
            transaction.on_commit(lambda: changes_committed(schema, changes))
    return result


# -- outcomes --------------------------------------------------------------------


def _succeeded(job: _Job, progress: _Progress) -> PollRun:
    caught_up = not progress.has_more
    plan = after_success(job.state, changes=progress.changes, has_more=not caught_up, policy=job.policy)
    _schedule(job.source_id, plan)
    if job.state.errors:  # the previous poll failed: its failures are over
        for kind in POLL_FAILURE_KINDS:
            failure_resolve(source_id=job.source_id, kind=kind)
    run = _record(job, progress, status=PollStatus.SUCCEEDED, caught_up=caught_up, plan=plan)
    POLLED_EVENTS.labels("new").inc(progress.new_events)
    POLLED_EVENTS.labels("duplicate").inc(progress.duplicates)
    log.info(
        "poll_finished",
        source=job.source_id,
        trigger=job.trigger.value,
        from_seq=progress.from_seq,
        to_seq=progress.to_seq,
        pages=progress.pages,
        events=progress.events,
        new_events=progress.new_events,
        changes=progress.changes,
        caught_up=caught_up,
        next_in_s=round(plan.delay_s, 3),
        duration_ms=_elapsed_ms(job),
    )
    return run


def _failed(job: _Job, progress: _Progress, error: UpstreamError) -> PollRun:
    plan = after_error(job.state, policy=job.policy, retry_after_s=error.retry_after_s)
    _schedule(job.source_id, plan)
    failure_report(
        kind=error.kind.value,
        source_id=job.source_id,
        identity={"host": error.host, "kind": error.kind.value, "status": error.http_status},
        detail={
            "error": error.detail,
            "host": error.host,
            "http_status": error.http_status,
            "retry_after_s": error.retry_after_s,
            "errors": error.errors,
            "trigger": job.trigger.value,
            "after_seq": progress.to_seq,
            "pages_committed": progress.pages,
            "next_in_s": round(plan.delay_s, 3),
        },
    )
    run = _record(job, progress, status=PollStatus.FAILED, caught_up=False, plan=plan, error=error)
    POLLED_EVENTS.labels("new").inc(progress.new_events)
    POLLED_EVENTS.labels("duplicate").inc(progress.duplicates)
    log.warning(
        "poll_failed",
        source=job.source_id,
        trigger=job.trigger.value,
        kind=error.kind.value,
        host=error.host,
        http_status=error.http_status,
        error=error.detail,
        pages=progress.pages,
        errors_in_a_row=plan.state.errors,
        next_in_s=round(plan.delay_s, 3),
        duration_ms=_elapsed_ms(job),
    )
    return run


def _skip(job: _Job, *, retry_in_s: float) -> PollRun:
    """The host's breaker is open: no call, and the next try when it may let a probe through."""
    delay = max(retry_in_s, job.policy.min_interval_s)
    # The rhythm and the error streak stay: nothing was learned about the source.
    plan = PollPlan(state=job.state, delay_s=delay, reason=f"circuit open for {job.host}")
    _schedule(job.source_id, plan)
    error = UpstreamError(
        ErrorKind.UPSTREAM_UNAVAILABLE,
        f"circuit breaker open for {job.host}: not called, next try in {delay:.1f}s",
        host=job.host,
    )
    progress = _Progress(from_seq=0, to_seq=0, has_more=True)
    run = _record(job, progress, status=PollStatus.SKIPPED, caught_up=False, plan=plan, error=error, seqs=False)
    log.info("poll_skipped", source=job.source_id, host=job.host, reason="circuit_open", next_in_s=round(delay, 3))
    return run


def _schedule(source_id: int, plan: PollPlan) -> None:
    Source.objects.filter(pk=source_id).update(
        poll_state=plan.state.to_dict(), next_poll_at=timezone.now() + timedelta(seconds=plan.delay_s)
    )


def _record(
    job: _Job,
    progress: _Progress,
    *,
    status: PollStatus,
    caught_up: bool,
    plan: PollPlan,
    error: UpstreamError | None = None,
    seqs: bool = True,
) -> PollRun:
    run = PollRun.objects.create(
        source_id=job.source_id,
        trigger=job.trigger,
        status=status,
        started_at=job.started_at,
        finished_at=timezone.now(),
        from_seq=progress.from_seq if seqs else None,
        to_seq=progress.to_seq if seqs else None,
        pages=progress.pages,
        events=progress.events,
        new_events=progress.new_events,
        changes=progress.changes,
        caught_up=caught_up,
        http_status=progress.http_status,
        error_kind=error.kind.value if error else "",
        error=error.detail if error else "",
        next_interval_s=round(plan.delay_s, 3),
    )
    POLLS.labels(status.value, run.error_kind).inc()
    POLL_SECONDS.observe(time.monotonic() - job.started)
    return run


def _elapsed_ms(job: _Job) -> float:
    return round((time.monotonic() - job.started) * 1000, 1)


# -- circuit breaker (per upstream host, soft state in Redis) --------------------


def breaker_allow(host: str) -> BreakerCheck:
    """May a call to `host` go out now? Takes the half-open probe when it is due.

    Redis unreachable: allowed. The breaker only saves a dead host from
    being hammered; it must not stop polling on its own failure.
    """
    now = time.time()

    def step(state: BreakerState) -> tuple[BreakerState, BreakerCheck]:
        check = breaker_check(state, now=now, policy=BREAKER_POLICY)
        return check.state, check

    try:
        return _breaker_update(host, step)
    except redis.RedisError as exc:
        log.warning("breaker_unavailable", host=host, error=str(exc))
        return BreakerCheck(allowed=True, state=BreakerState())


def breaker_report(host: str, *, ok: bool) -> None:
    """Fold one call's outcome into the host's breaker. `ok`: the host answered."""
    now = time.time()

    def step(state: BreakerState) -> tuple[BreakerState, None]:
        return breaker_record(state, ok=ok, now=now, policy=BREAKER_POLICY), None

    try:
        _breaker_update(host, step)
    except redis.RedisError as exc:
        log.warning("breaker_unavailable", host=host, error=str(exc))


def breaker_key(host: str) -> str:
    return key("breaker", host)


def _breaker_update(host: str, step: Callable[[BreakerState], tuple[BreakerState, R]]) -> R:
    """Read, decide, write back with compare-and-set (WATCH): of two workers
    racing for the half-open probe, one wins and the other re-reads."""
    name = breaker_key(host)
    with get_redis().pipeline() as pipe:
        while True:
            try:
                pipe.watch(name)  # type: ignore[no-untyped-call]
                raw = pipe.get(name)
                state = BreakerState.from_dict(json.loads(raw)) if raw else BreakerState()
                new_state, result = step(state)
                if new_state != state:
                    pipe.multi()
                    pipe.set(name, json.dumps(new_state.to_dict()), ex=BREAKER_TTL_S)
                    pipe.execute()
                else:
                    pipe.unwatch()
                return result
            except redis.WatchError:
                continue
