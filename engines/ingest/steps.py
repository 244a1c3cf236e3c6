"""The steps of a push, in order, and what each refusal answers: one sequence for both front doors.

`POST /api/v1/sources/{id}/events` has two front doors, the raw ASGI fast path
(engines/ingest/fastpath.py, what clients reach) and the Django view
(engines/ingest/views.py: WSGI, the test client). Both run `push`, a
generator (beastflow/sansio.py) that holds the order of the checks and turns
a refusal into its answer; it yields to the door only what the door does its
own way:

- READ_BODY: the body (the fast path reads ASGI messages and refuses past the
  limit as it reads; the view calls request.read());
- DATABASE: the database breaker (the fast path's own check; the view's is
  ServiceUnavailableMiddleware's, taken before any view runs);
- Admit: `admit`, which may query (the fast path runs it on its event loop
  while the caches answer, else in a thread; the view inline);
- Commit: `settle` over a group (the fast path commits the requests of a
  tenant that queued together, on its own connections; the view a group of
  one, in Django's transaction).

A request with several faults gets the answer of the first step in STEPS
that refuses it (tests/engines/test_ingest_doors.py holds both doors to it).
What each step does is engines/ingest/service.py's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import structlog
from django import db as django_db
from django.db import connection
from django_tenants.utils import schema_context

from beastflow import unavailable
from beastflow.problems import CONTENT_TYPE, problem_body
from beastflow.sansio import Steps
from beastflow.tracing import stage
from engines.ingest import service
from engines.ingest.commit import BatchResult, PendingBatch
from engines.ingest.quota import QuotaDecision
from engines.ingest.service import IngestError, SourceMeta, Taken
from tenants.selectors import CacheMiss

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Step:
    name: str
    refusals: tuple[int, ...]  # the statuses this step may answer with
    what: str


STEPS: tuple[Step, ...] = (
    Step("size", (413,), "a declared body over MAX_BODY_BYTES, before it is read; then the body as read"),
    Step("database", (503,), "the database breaker is open: answered at once, not after a wait for a connection"),
    Step("route", (401, 404), "who asks: an API key, else the source's global id (service.route)"),
    Step("source", (404,), "the source, in the tenant that asks"),
    Step("verify", (401,), "a key of the source's tenant, else the source's push scheme's signature"),
    Step("read", (400, 413, 422), "the body's events, or the upstream's request through its mapping; counted"),
    Step("quota", (429,), "the tenant's token bucket, one token per event (none for a request without events)"),
    Step("commit", (404, 422, 500, 503), "one transaction for the group; a batch the database refuses fails alone"),
    Step("publish", (), "the changes to the websocket streams and the callbacks' wake; never refuses"),
)


# What `push` yields to its door ----------------------------------------------------


class _Op:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


READ_BODY = _Op("READ_BODY")  # answer: the body's bytes
DATABASE = _Op("DATABASE")  # answer: None, or DatabaseKnownDownError raised


@dataclass(frozen=True)
class Admit:
    """Run `admit(source_id, headers, body)`; answer: its (meta, taken)."""

    source_id: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Commit:
    """Quota, commit, publish for this batch (`settle`, alone or in a group); answer: its BatchResult."""

    meta: SourceMeta
    batch: PendingBatch


# What `settle` yields to its driver.


@dataclass(frozen=True)
class TakeQuota:
    """service.take_quota (or take_quota_async); answer: one QuotaDecision per cost."""

    tenant: str
    costs: list[int]
    rate: float
    burst: float


@dataclass(frozen=True)
class CommitBatches:
    """Commit the batches in one transaction of `schema`; answer: one BatchResult per batch."""

    schema: str
    batches: list[PendingBatch]


@dataclass(frozen=True)
class Publish:
    """engines.publish.changes_committed (or its async form); answer: None."""

    schema: str
    changes: list[dict[str, Any]]


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


# The sequence ----------------------------------------------------------------------


def push(source_id: int, headers: Mapping[str, str]) -> Steps[Reply]:
    """One push, from its headers to its answer (`headers` with lower-cased names).

    A refusal of any step, the door's own included (a body past the limit, a
    client gone), is answered here; what is no refusal (the database down, a
    bug) is left to the door's handler.
    """
    try:
        if int(headers.get("content-length") or 0) > service.MAX_BODY_BYTES:
            raise too_big()
        body: bytes = yield READ_BODY
        if len(body) > service.MAX_BODY_BYTES:
            raise too_big()
        yield DATABASE
        meta, taken = yield Admit(source_id, headers, body)
        result = None
        if taken.events:
            # Waiting for the group commit included; the commit's own time is STAGE_COMMIT's.
            with stage("ingest.commit"):
                result = yield Commit(meta, PendingBatch(source_id=source_id, events=taken.events))
            if result.source_missing:  # deleted since the source cache read it
                raise IngestError(404, "No such source.")
    except IngestError as exc:
        return refusal(exc, source_id)
    service.record_outcome(202, result, ignored=taken.ignored)
    return Reply(202, service.answer(taken, result))


def too_big() -> IngestError:
    return IngestError(413, f"The body is over {service.MAX_BODY_BYTES} bytes.")


def refusal(exc: IngestError, source_id: int) -> Reply:
    """The problem answer to a refused push, counted and logged."""
    service.record_outcome(exc.status)
    log.info("ingest_refused", status=exc.status, source=source_id, detail=exc.detail)
    return Reply(exc.status, problem_body(exc.status, exc.detail, errors=exc.errors), CONTENT_TYPE, exc.headers)


def admit(
    source_id: int, headers: Mapping[str, str], body: bytes, *, cached_only: bool = False
) -> tuple[SourceMeta, Taken]:
    """Route, source, verify, read, in this order: the request's source and events, or IngestError.

    Blocking, and it queries only on a cache miss or to count a push error.
    With `cached_only` (the fast path's try on its event loop) it raises
    tenants.selectors.CacheMiss instead of either, before touching Django's
    database layer, and the door runs the whole of it again in a thread.
    """
    with stage("ingest.auth", service.STAGE_AUTH):
        tenant, has_key = service.route(source_id, headers, cached_only=cached_only)
        meta = service.source_cache.get(
            tenant.schema_name,
            source_id,
            _cache_miss if cached_only else lambda: service.load_source_meta(tenant, source_id),
        )
        if meta is None:
            raise IngestError(404, "No such source.")
        native = service.verify(meta, has_key=has_key, headers=headers, body=body)
    try:
        with stage("ingest.validate", service.STAGE_VALIDATE):
            taken = service.read(
                meta, native=native, headers=headers, body=body, content_type=headers.get("content-type", "")
            )
    except IngestError:
        if cached_only:
            raise CacheMiss from None  # the count is a write: the thread's run refuses and counts
        with schema_context(meta.schema), connection.cursor() as cursor:
            service.count_push_error(cursor, source_id, scheme=meta.push_scheme if native else None)
        raise
    return meta, taken  # the quota is the commit's: taken once for a whole group


def _cache_miss() -> SourceMeta | None:
    raise CacheMiss


def settle(
    schema: str, metas: Sequence[SourceMeta], batches: Sequence[PendingBatch]
) -> Steps[list[BatchResult | IngestError]]:
    """Quota, commit, publish for admitted requests of one tenant, in order; a result or a refusal for each.

    The quota is taken for the whole group in one round trip, in the group's
    order; what it admits commits in one transaction; the changes are
    published once COMMIT returned, before any request is answered.
    """
    latest = metas[-1]  # one tenant: the same quota, unless it changed within the source cache's few seconds
    costs = [len(batch.events) for batch in batches]
    decisions: list[QuotaDecision] = yield TakeQuota(latest.tenant_slug, costs, latest.rate, latest.burst)
    refusals = [None if d.allowed else service.over_quota(latest, d.retry_after_s) for d in decisions]
    admitted = [batch for batch, refused in zip(batches, refusals, strict=True) if refused is None]
    committed = iter((yield from isolating(schema, admitted)) if admitted else [])
    results = [refused if refused is not None else next(committed) for refused in refusals]
    changes = [change for result in results if isinstance(result, BatchResult) for change in result.changes]
    if changes:
        with stage("ingest.publish", service.STAGE_PUBLISH):
            yield Publish(schema, changes)
    return results


# -- one batch's failure stays its own -------------------------------------------------
#
# A group commits in one transaction, so one batch the database refuses (data
# validation let through) would roll back every batch of the group. On such a
# refusal each batch of the group is committed again on its own: the others
# commit, only the offender gets its error. A lost connection or a database
# that is down is no batch's fault: it fails the group (503 to each request).
#
# The fast path commits on psycopg connections of its own, the view on
# Django's, which wraps psycopg's errors in its own classes: both are named.
_DATABASE_ERRORS = (psycopg.Error, django_db.DatabaseError)
_REFUSED_DATA = (psycopg.DataError, psycopg.IntegrityError, django_db.DataError, django_db.IntegrityError)


def isolating(schema: str, batches: list[PendingBatch]) -> Steps[list[BatchResult | IngestError]]:
    """Commit `batches` together; when the database refuses the data, each alone. One result per batch."""
    try:
        return list((yield CommitBatches(schema, batches)))
    except unavailable.DATABASE_DOWN:
        raise
    except _DATABASE_ERRORS as exc:
        if len(batches) == 1:
            return [_as_refusal(exc)]
    results: list[BatchResult | IngestError] = []
    for batch in batches:
        try:
            results.extend((yield CommitBatches(schema, [batch])))
        except unavailable.DATABASE_DOWN:
            raise
        except _DATABASE_ERRORS as exc:
            results.append(_as_refusal(exc))
    return results


def _as_refusal(exc: Exception) -> IngestError:
    if isinstance(exc, _REFUSED_DATA):
        log.warning("ingest_batch_refused_by_database", error=str(exc).splitlines()[0] if str(exc) else "")
        return IngestError(422, "The database refused this batch's data; nothing of it was stored.")
    # Not the data's fault as far as we can tell: this request alone answers 500, logged.
    log.error("ingest_batch_failed", error=str(exc))
    return IngestError(500, "An internal error; it has been logged with the request id.")


def outcome(result: BatchResult | IngestError) -> BatchResult:
    """A request's own result out of its group's: the refusal raised."""
    if isinstance(result, IngestError):
        raise result
    return result
