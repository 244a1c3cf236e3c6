"""The PollingEngine: poll a source's change feed and commit what push missed.

docs/polling.md. `source_poll` runs in the current tenant schema:

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

A `rest` source (an upstream's own list API, engines/connectors/rest.py) takes step 3
from engines/connectors/rest_poll.py instead: it pages a since-query from its
watermark, counts the changes push had missed, and keeps its watermark and
ETag in `poll_state["rest"]`; step 5 also stores what it found missed on
its StreamState, the monitor's signal for a stream without seqs.

`polls_claim_due` picks the sources the scheduler should poll now;
`audits_claim_due` the rest sources in event mode due for an audit poll.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import redis
import structlog
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from prometheus_client import Counter, Histogram

from beastflow.redis_client import get_redis, key
from beastflow.tenancy import current_schema
from engines import outbound
from engines.connectors.http import ErrorKind, FeedPage, UpstreamError, fetch_changes, upstream_host
from engines.connectors.mapping import to_microseconds
from engines.connectors.rest import host_of, rate_limit_until
from engines.connectors.rest_poll import RestMemory, RestProgress, rest_page_through
from engines.ingest import service
from engines.ingest.commit import BatchResult, PendingBatch
from engines.ingest.validation import Event, validate
from engines.models import ModeChoices, Origin, PollRun, PollStatus, PollTrigger, Source, StreamState
from engines.monitor import MISS_GRACE_S
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
from engines.schemas import CONNECTOR_CONFIGS, Connector, HttpConnectorConfig, PollConfig, RestConnectorConfig
from scheduling.services import source_polls_at, source_wake

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
# queue ahead of the other tenants (fair sharing: docs/scheduling.md, "Weighted fair sharing and backpressure").
DISPATCH_LIMIT = 500
# Failure kinds a poll reports; a successful poll resolves them.
POLL_FAILURE_KINDS = tuple(kind.value for kind in ErrorKind)
FAILURE_DETAIL_ERRORS = 5

POLLS = Counter("beastflow_polls_total", "Polls of upstream change feeds", ["status", "error_kind"])
POLLED_EVENTS = Counter(
    "beastflow_polled_events_total", "Events fetched by polls", ["outcome"]
)  # new (push had missed it) | duplicate
POLL_MISSED = Counter(
    "beastflow_polled_missed_total", "Changes polls of rest sources committed that push had missed (past the grace)"
)
REST_RESPONSES = Counter(
    "beastflow_rest_poll_responses_total", "Answers of rest upstreams that shaped a poll", ["outcome"]
)  # not_modified (304) | rate_limit_wait (X-RateLimit-Remaining: 0 or a closed window)
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
    # rest sources: no seqs; what push missed, and the connector's own facts
    seqs: bool = True
    missed: int = 0
    details: dict[str, Any] | None = None
    retry_after_s: float | None = None  # a rate-limit window that closed during the poll
    memory: dict[str, Any] | None = None  # poll_state["rest"] for the next poll


@dataclass(frozen=True)
class _Job:
    """A leased source and everything its poll needs, read once."""

    source_id: int
    trigger: PollTrigger
    schema: str
    config: HttpConnectorConfig | RestConnectorConfig
    host: str
    policy: PollPolicy
    page_budget: int
    state: PollState
    data_check: Callable[[dict[str, Any]], str | None] | None
    started_at: datetime
    started: float  # monotonic
    mode: str = ModeChoices.EVENT
    audit_interval_s: float = 0.0
    poll_state: dict[str, Any] | None = None  # as read, so that what is not the scheduler's survives
    created_at: datetime | None = None
    strategy_version_id: int | None = None  # whose poll policy this is, recorded on the run


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
    if source.paused and why in (PollTrigger.SCHEDULE, PollTrigger.AUDIT):
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


# The modes in which a source is polled on a schedule (in event mode, only a rest source's audits).
POLLED_MODES = (ModeChoices.HYBRID, ModeChoices.POLLING)


def poll_scheduled(source: Source) -> bool:
    """Is the source polled on a schedule in its mode (unpaused): what `_pollable` or `_auditable` would take.

    Only then does pausing or resuming it make its poll deadline due
    (engines.source_ops): a deadline the dispatcher visits only to learn
    there is none costs a round's slot, and resuming a thousand tenants'
    sources at once would make nine thousand such visits, one per event-mode
    source of the bench's world.
    """
    if source.mode in POLLED_MODES:
        return True
    audit_every = (source.poll or {}).get("audit_interval_s", PollConfig.model_fields["audit_interval_s"].default)
    return source.mode == ModeChoices.EVENT and source.connector == Connector.REST.value and audit_every != 0


def _auditable() -> QuerySet[Source]:
    """Sources an audit poll is for: rest sources in event mode with an audit interval (see audits_claim_due)."""
    return Source.objects.filter(paused=False, mode=ModeChoices.EVENT, connector=Connector.REST.value).exclude(
        poll__audit_interval_s=0
    )


def _pollable() -> QuerySet[Source]:
    """Sources a scheduled poll is for: not paused, in hybrid or polling mode."""
    return Source.objects.filter(paused=False, mode__in=POLLED_MODES)


def audits_claim_due(
    *, limit: int = DISPATCH_LIMIT, claim_s: float = DISPATCH_CLAIM_S, source_ids: list[int] | None = None
) -> list[int]:
    """The rest sources of this tenant in event mode due for an audit poll, claimed for `claim_s`.

    A rest upstream gives no seqs, so push gaps cannot be seen in the
    stream; an audit poll every `poll.audit_interval_s` (0: never) asks what
    changed instead. Due like a scheduled poll: `next_poll_at` unset or past
    (an audit sets it to the next audit), no live lease. `http` and
    `simulator` sources are not audited: their events carry seqs, whose gaps
    the monitor sees and targeted gap-fill polls fill. `source_ids`: only
    among these (the cross-tenant dispatcher's claim).
    """
    return _claim_due(_auditable(), limit=limit, claim_s=claim_s, source_ids=source_ids)


def polls_claim_due(
    *, limit: int = DISPATCH_LIMIT, claim_s: float = DISPATCH_CLAIM_S, source_ids: list[int] | None = None
) -> list[int]:
    """The sources of this tenant due for a scheduled poll, claimed for `claim_s`.

    Due: not paused, in hybrid or polling mode, `next_poll_at` unset or
    past, no live lease. Most overdue first. Claiming pushes `next_poll_at`
    ahead, so the next scheduler tick does not send them again while their
    polls wait in the queue; each poll sets the real next time when it ends.
    `source_ids`: only among these (the cross-tenant dispatcher's claim).
    """
    return _claim_due(_pollable(), limit=limit, claim_s=claim_s, source_ids=source_ids)


def _claim_due(candidates: QuerySet[Source], *, limit: int, claim_s: float, source_ids: list[int] | None) -> list[int]:
    now = timezone.now()
    if source_ids is not None:
        candidates = candidates.filter(pk__in=source_ids)
    with transaction.atomic():
        due = (
            candidates.filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now))
            .filter(Q(poll_lease_until__isnull=True) | Q(poll_lease_until__lt=now))
            .order_by(F("next_poll_at").asc(nulls_first=True), "pk")
            # Two dispatchers (a slow round overlapping the next) split the
            # due sources instead of both sending them.
            .select_for_update(skip_locked=True)
        )
        ids = list(due.values_list("pk", flat=True)[:limit])
        if ids:
            Source.objects.filter(pk__in=ids).update(next_poll_at=now + timedelta(seconds=claim_s))
    return ids


def poll_deadlines(source_ids: list[int]) -> dict[int, datetime | None]:
    """When each of these sources is next due for a poll or an audit (None: it is not polled).

    What the public schedule should say (scheduling.models.SourceSchedule):
    the later of `next_poll_at` (unset: now) and a live lease's end, for
    sources polls_claim_due or audits_claim_due would take.
    """
    now = timezone.now()
    polled = set(_pollable().filter(pk__in=source_ids).values_list("pk", flat=True))
    polled |= set(_auditable().filter(pk__in=source_ids).values_list("pk", flat=True))
    deadlines: dict[int, datetime | None] = dict.fromkeys(source_ids)
    for pk, next_at, lease in Source.objects.filter(pk__in=list(polled)).values_list(
        "pk", "next_poll_at", "poll_lease_until"
    ):
        deadlines[pk] = max(next_at or now, lease or now)
    return deadlines


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


def _connector_config(source: Source) -> HttpConnectorConfig | RestConnectorConfig:
    # `http` and `simulator` speak the same protocol (docs/contract.md §6); `rest` is an upstream's own list API.
    return CONNECTOR_CONFIGS[Connector(source.connector)].model_validate(source.config)


def _job(source: Source, trigger: PollTrigger) -> _Job:
    config = _connector_config(source)
    poll = PollConfig.model_validate(source.poll or {})
    return _Job(
        source_id=source.pk,
        trigger=trigger,
        schema=current_schema(),
        config=config,
        host=host_of(config) if isinstance(config, RestConnectorConfig) else upstream_host(str(config.poll_url)),
        policy=PollPolicy(min_interval_s=poll.min_interval_s, max_interval_s=poll.max_interval_s),
        page_budget=poll.page_budget,
        state=PollState.from_dict(source.poll_state or {}),
        # Polled events pass the same checks as pushed ones, the source's data schema included.
        data_check=service.data_schema_check(source.data_schema) if source.data_schema else None,
        started_at=timezone.now(),
        started=time.monotonic(),
        mode=source.mode,
        audit_interval_s=poll.audit_interval_s,
        poll_state=dict(source.poll_state or {}),
        created_at=source.created_at,
        strategy_version_id=source.strategy_version_id,
    )


def _poll_leased(job: _Job) -> PollRun | None:
    if isinstance(job.config, RestConnectorConfig):
        return _poll_rest(job, job.config)
    check = breaker_allow(job.host)
    if not check.allowed:
        return _skip(job, retry_in_s=check.retry_in_s)
    assert isinstance(job.config, HttpConnectorConfig)
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
    assert isinstance(job.config, HttpConnectorConfig)
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


def _poll_rest(job: _Job, config: RestConnectorConfig) -> PollRun | None:
    """A rest source's poll (engines/connectors/rest_poll.py): from its watermark, rate-limit window honoured first."""
    memory = RestMemory.from_dict((job.poll_state or {}).get("rest"))
    until = rate_limit_until(config)
    if until is not None and until > time.time():  # never call before the upstream's reset
        return _skip(job, retry_in_s=until - time.time(), rate_limited=True)
    check = breaker_allow(job.host)
    if not check.allowed:
        return _skip(job, retry_in_s=check.retry_in_s)
    rest, error = rest_page_through(
        config=config,
        memory=memory,
        page_budget=job.page_budget,
        deadline=job.started + POLL_TIME_BUDGET_S,
        data_check=job.data_check,
        commit=lambda events: _commit_page(job, events),
        now_us=lambda: to_microseconds(timezone.now()),
        watching_since_us=to_microseconds(job.created_at) if job.created_at else 0,
        grace_s=MISS_GRACE_S,
    )
    if error is None and not rest.compared and rest.rate_limit_waits:
        # Another poll or a reconciliation with the same credentials closed the window meanwhile.
        return _skip(job, retry_in_s=rest.rate_limit_wait_s or 0.0, rate_limited=True)
    breaker_report(job.host, ok=error is None or not error.host_down)
    if rest.source_gone:
        return None
    progress = _rest_progress(rest, before=memory)
    if rest.compared:
        _stream_audited(job, rest)
    return _succeeded(job, progress) if error is None else _failed(job, progress, error)


def _rest_progress(rest: RestProgress, *, before: RestMemory) -> _Progress:
    return _Progress(
        from_seq=0,
        to_seq=0,
        pages=rest.pages,
        events=rest.events,
        new_events=rest.new_events,
        duplicates=rest.duplicates,
        changes=rest.changes,
        has_more=rest.has_more,
        http_status=rest.http_status,
        seqs=False,
        missed=rest.missed,
        details=rest.details(before=before),
        retry_after_s=rest.rate_limit_wait_s,
        memory=rest.memory.to_dict(),
    )


def _stream_audited(job: _Job, rest: RestProgress) -> None:
    """What this poll found push had missed (0 included) becomes the stream's signal (engines/monitor.py)."""
    now = timezone.now()
    fields: dict[str, Any] = {"polled_missed": rest.missed, "polled_missed_at": now}
    if job.trigger == PollTrigger.AUDIT:
        fields["last_audit_at"] = now
    StreamState.objects.filter(pk=job.source_id).update(**fields)
    # The finding is the signal of a stream without seqs: judge it now. A
    # settled stream's next judgement may be minutes away (its silence
    # deadline), and misses found meanwhile would be judged only once the
    # next audit had already cleared them.
    source_wake(job.source_id, judge=True)
    POLL_MISSED.inc(rest.missed)
    REST_RESPONSES.labels("not_modified").inc(rest.not_modified)
    REST_RESPONSES.labels("rate_limit_wait").inc(rest.rate_limit_waits)


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
    # Paging by seq relies on docs/contract.md §6: seq present, ascending, all > after.
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
    plan = after_success(
        job.state,
        changes=progress.changes,
        has_more=not caught_up,
        policy=job.policy,
        retry_after_s=progress.retry_after_s,
    )
    if job.mode == ModeChoices.EVENT and job.audit_interval_s > 0 and caught_up and not progress.seqs:
        # In event mode a rest source is polled only to audit the push: next at the audit
        # interval (the adaptive interval is for polling modes), never before a rate-limit reset.
        delay = max(job.audit_interval_s, progress.retry_after_s or 0.0)
        plan = replace(plan, delay_s=delay, reason=f"audit: next in {delay:.1f}s")
    _schedule(job, plan, memory=progress.memory)
    if job.state.errors:  # the previous poll failed: its failures are over
        for kind in POLL_FAILURE_KINDS:
            outbound.announce(outbound.FailureCleared(source_id=job.source_id, kind=kind))
    run = _record(job, progress, status=PollStatus.SUCCEEDED, caught_up=caught_up, plan=plan)
    if job.mode == ModeChoices.HYBRID:
        # What a source in hybrid waits for (a poll that catches up on the
        # way down, a poll's findings on the way back): judged now, not at the
        # slower cadence it waits at meanwhile (engines/deadlines.py).
        source_wake(job.source_id, judge=True)
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
        **_rest_log(progress),
        duration_ms=_elapsed_ms(job),
    )
    return run


def _failed(job: _Job, progress: _Progress, error: UpstreamError) -> PollRun:
    plan = after_error(job.state, policy=job.policy, retry_after_s=error.retry_after_s)
    _schedule(job, plan, memory=progress.memory)
    outbound.announce(
        outbound.FailureObserved(
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
                "after_seq": progress.to_seq if progress.seqs else None,
                "pages_committed": progress.pages,
                **({"rest": progress.details} if progress.details is not None else {}),
                "next_in_s": round(plan.delay_s, 3),
            },
        )
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


def _rest_log(progress: _Progress) -> dict[str, Any]:
    if progress.details is None:
        return {}
    details = progress.details
    return {
        "missed": progress.missed,
        "watermark_from": details["watermark_from"],
        "watermark_to": details["watermark_to"],
        "not_modified": details["not_modified"],
        "rate_limit_waits": details["rate_limit_waits"],
    }


def _skip(job: _Job, *, retry_in_s: float, rate_limited: bool = False) -> PollRun:
    """No call: the host's breaker is open, or (`rate_limited`) the upstream's rate-limit
    window is closed; the next try when the breaker may let a probe through, or after the reset."""
    delay = max(retry_in_s, job.policy.min_interval_s)
    # The rhythm and the error streak stay: nothing was learned about the source.
    if rate_limited:
        why, kind = f"rate limit of {job.host} spent", ErrorKind.RATE_LIMITED
        detail = (
            f"rate limit of {job.host} spent (X-RateLimit-Remaining: 0): not called before its reset in {delay:.1f}s"
        )
    else:
        why, kind = f"circuit open for {job.host}", ErrorKind.UPSTREAM_UNAVAILABLE
        detail = f"circuit breaker open for {job.host}: not called, next try in {delay:.1f}s"
    plan = PollPlan(state=job.state, delay_s=delay, reason=why)
    _schedule(job, plan)
    error = UpstreamError(kind, detail, host=job.host)
    progress = _Progress(from_seq=0, to_seq=0, has_more=True)
    run = _record(job, progress, status=PollStatus.SKIPPED, caught_up=False, plan=plan, error=error, seqs=False)
    reason = "rate_limited" if rate_limited else "circuit_open"
    log.info("poll_skipped", source=job.source_id, host=job.host, reason=reason, next_in_s=round(delay, 3))
    return run


def _schedule(job: _Job, plan: PollPlan, *, memory: dict[str, Any] | None = None) -> None:
    # The scheduler's part of poll_state is replaced; a connector's own memory (`rest`) is kept or replaced.
    state: dict[str, Any] = {**(job.poll_state or {}), **plan.state.to_dict()}
    if memory is not None:
        state["rest"] = memory
    next_at = timezone.now() + timedelta(seconds=plan.delay_s)
    Source.objects.filter(pk=job.source_id).update(poll_state=state, next_poll_at=next_at)
    source_polls_at([job.source_id], next_at)  # the cross-tenant schedule (docs/scheduling.md)


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
        from_seq=progress.from_seq if seqs and progress.seqs else None,
        to_seq=progress.to_seq if seqs and progress.seqs else None,
        pages=progress.pages,
        events=progress.events,
        new_events=progress.new_events,
        changes=progress.changes,
        caught_up=caught_up,
        missed=progress.missed,
        details=progress.details or {},
        http_status=progress.http_status,
        error_kind=error.kind.value if error else "",
        error=error.detail if error else "",
        next_interval_s=round(plan.delay_s, 3),
        strategy_version_id=job.strategy_version_id,
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
