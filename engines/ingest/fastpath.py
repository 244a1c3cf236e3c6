"""The ingest endpoint as raw ASGI in front of Django, with group commit.

Django's ASGI request cycle costs more than the work of a single-event
webhook (~5x its WSGI path: docs/performance.md, "The stack's ceilings"), so `POST /api/v1/sources/{id}/events`
is answered here without it. Everything it decides comes from
engines/ingest/service.py, the same as the Django view.

Group commit: requests of one tenant queue for that tenant's committer,
which commits whatever has queued in one transaction while the previous
one ran. Each request still gets its own answer, and only after the commit.

The commit itself runs on a connection of this module's own pool, with the
commit path's two rounds of statements pipelined (engines.ingest.commit.
CommitPlan): BEGIN, the search_path, the stream locks and the event insert
in one network round trip, the stream updates, the seqs with changes and
records, and the COMMIT in a second. Statement by statement through
Django's cursor a commit cost nine round trips, and in this busy process
every round trip also waits for the GIL (measured: a 15-request group took
13 ms, of which 2 ms in PostgreSQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
import structlog
from django.core.exceptions import SynchronousOnlyOperation
from django.db import close_old_connections, connection, connections
from django.utils import timezone
from django_tenants.utils import schema_context
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from beastflow import correlation, otel, unavailable
from beastflow.ingest_route import INGEST_PATH, Receive, Scope, Send
from beastflow.problems import CONTENT_TYPE, problem_body
from beastflow.tracing import stage
from engines.ingest import service
from engines.ingest.commit import BatchResult, CommitPlan, PendingBatch, Statement
from engines.publish import changes_committed, changes_committed_async
from tenants.middleware import bearer_token
from tenants.selectors import apikey_resolve, tenant_for_source

log = structlog.get_logger(__name__)


MAX_EVENTS_PER_COMMIT = 5_000
# Commits of different tenants run at once, one per tenant at a time: this
# bounds the connections (and threads) they hold in a web process.
# A group this small commits on the event loop (its planning takes well under
# a millisecond): no hand-off to a thread and back, no wait for the GIL
# between the two round trips. Larger groups plan in a thread.
SMALL_GROUP_EVENTS = 64
# Bodies up to this size are parsed on the event loop when no query is needed.
INLINE_BODY_BYTES = 16 * 1024
COMMIT_CONNECTIONS = int(os.environ.get("BEASTFLOW_INGEST_COMMIT_CONNECTIONS", "4"))
# The most a commit waits for a pool connection (psycopg_pool's default is 30 s), as Django's pool.
POOL_WAIT_S = 10.0


# The cyclic garbage collector, tuned for a process that allocates a lot
# and keeps little: without it a full collection walked the ~150,000
# objects of the loaded project 14 times in a 6 s batch run, 1.7 s of GIL
# time in all (bench/ingest.py, phase 2); with it, 31 ms.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Freeze what is loaded (modules, settings, URL confs) out of every collection, and collect less often.

    Reference counting frees almost everything the ingest path allocates; the
    collector only has cycles to find, and fewer, larger young collections
    find the same ones.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


@dataclass
class _Waiting:
    meta: service.SourceMeta
    batch: PendingBatch
    future: asyncio.Future[BatchResult]


@dataclass
class _Committer:
    queue: list[_Waiting] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class IngestFastPath:
    def __init__(self, app: Any, *, threads: int = 8) -> None:
        self.app = app
        tune_gc()
        # Parsing, lookups and commits are blocking work: they run here, off the event loop.
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ingest")
        # Commits get threads of their own: a commit never waits behind parsing.
        self.committing = ThreadPoolExecutor(max_workers=COMMIT_CONNECTIONS, thread_name_prefix="ingest-commit")
        self.committers: dict[str, _Committer] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = INGEST_PATH.match(scope["path"])
            if match:
                await self.handle(scope, receive, send, int(match.group(1)))
                return
        await self.app(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send, source_id: int) -> None:
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        request_id = correlation.accept_or_new(headers.get("x-request-id"))
        # This request's task context: its log lines and spans carry the id.
        correlation.bind(request_id)
        with otel.server_span(
            "POST /api/v1/sources/{id}/events",
            headers,
            {"http.route": "/api/v1/sources/{id}/events", "beastflow.source": source_id},
        ) as span:
            status = await self._handle(headers, receive, send, source_id, request_id)
            if span is not None:
                span.set_attribute("http.response.status_code", status)

    async def _handle(
        self, headers: dict[str, str], receive: Receive, send: Send, source_id: int, request_id: str
    ) -> int:
        status, body, extra = 500, b"", {}
        try:
            declared = int(headers.get("content-length") or 0)
            if declared > service.MAX_BODY_BYTES:
                raise service.IngestError(413, f"The body is over {service.MAX_BODY_BYTES} bytes.")
            raw = await _read_body(receive)
            if not unavailable.database.admit():  # down a moment ago: do not wait for a pool connection
                raise unavailable.DatabaseKnownDownError("the database is down")
            meta, taken = await self.prepare(headers, source_id, raw, request_id)
            result = None
            if taken.events:
                with stage("ingest.commit"):  # waiting for the group commit included; its time alone is the histogram's
                    result = await self.commit(meta, PendingBatch(source_id=source_id, events=taken.events))
                if result.source_missing:
                    raise service.IngestError(404, "No such source.")
            service.record_outcome(202, result, ignored=taken.ignored)
            unavailable.database.succeeded()
            status = 202
            body = json.dumps(service.answer(taken, result)).encode()
            content_type = "application/json"
        except service.IngestError as exc:
            service.record_outcome(exc.status)
            status, extra = exc.status, exc.headers
            body = json.dumps(problem_body(exc.status, exc.detail, errors=exc.errors)).encode()
            content_type = CONTENT_TYPE
            log.info("ingest_refused", status=status, source=source_id, correlation_id=request_id, detail=exc.detail)
        except unavailable.DATABASE_DOWN as exc:
            # PostgreSQL unreachable or restarting: nothing was acknowledged, the
            # client retries (see docs/reliability.md). Never a 500.
            service.record_outcome(503)
            if not isinstance(exc, unavailable.DatabaseKnownDownError):
                unavailable.database.failed()
            status, extra = 503, {"Retry-After": str(unavailable.RETRY_AFTER_S)}
            body = json.dumps(problem_body(503, "The database is unavailable; retry shortly.")).encode()
            content_type = CONTENT_TYPE
            log.warning("ingest_database_down", source=source_id, correlation_id=request_id, error=str(exc)[:200])
        except Exception:
            log.exception("ingest_failed", source=source_id, correlation_id=request_id)
            service.record_outcome(500)
            body = json.dumps(problem_body(500, "An internal error; it has been logged with the request id.")).encode()
            content_type = CONTENT_TYPE
        response_headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
            *((name.lower().encode(), value.encode()) for name, value in extra.items()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})
        return status

    async def prepare(
        self, headers: dict[str, str], source_id: int, raw: bytes, request_id: str
    ) -> tuple[service.SourceMeta, service.Taken]:
        """`_prepare` on the event loop when it can be, else in a thread.

        A small body whose key, source and tenant are in the in-process
        caches needs no database and a few tens of microseconds: it is
        checked right here, saving two thread hand-offs. Anything that would
        query (a cache miss, counting a push error) raises Django's
        SynchronousOnlyOperation before it touches the database, and the
        whole request is then prepared in a thread like a large body.
        """
        if len(raw) <= INLINE_BODY_BYTES:
            try:
                return _prepare(headers, source_id, raw, request_id, on_loop=True)
            except SynchronousOnlyOperation:
                pass
        loop = asyncio.get_running_loop()
        # In the request's context: its trace (and log context) continue in the thread.
        run = contextvars.copy_context().run
        return await loop.run_in_executor(self.pool, run, _prepare, headers, source_id, raw, request_id)

    async def commit(self, meta: service.SourceMeta, batch: PendingBatch) -> BatchResult:
        """The batch's result once committed; IngestError(429) when over the tenant's quota."""
        schema = meta.schema
        committer = self.committers.get(schema)
        if committer is None:
            committer = self.committers[schema] = _Committer()
        future: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        committer.queue.append(_Waiting(meta, batch, future))
        if committer.task is None or committer.task.done():
            committer.task = asyncio.create_task(self._run_committer(schema, committer))
        return await future

    async def _run_committer(self, schema: str, committer: _Committer) -> None:
        loop = asyncio.get_running_loop()
        while committer.queue:
            taken: list[_Waiting] = []
            size = 0
            while committer.queue and (
                not taken or size + len(committer.queue[0].batch.events) <= MAX_EVENTS_PER_COMMIT
            ):
                item = committer.queue.pop(0)
                taken.append(item)
                size += len(item.batch.events)
            try:
                metas, batches = [w.meta for w in taken], [w.batch for w in taken]
                if size <= SMALL_GROUP_EVENTS:
                    results = await _commit_group_async(schema, metas, batches)
                else:
                    results = await loop.run_in_executor(self.committing, _commit_group, schema, metas, batches)
            except Exception as exc:
                for waiting in taken:
                    if not waiting.future.done():
                        waiting.future.set_exception(exc)
                continue
            for waiting, result in zip(taken, results, strict=True):
                if waiting.future.done():
                    continue
                if isinstance(result, service.IngestError):
                    waiting.future.set_exception(result)
                else:
                    waiting.future.set_result(result)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise service.IngestError(400, "The client went away before the body arrived.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > service.MAX_BODY_BYTES:
            raise service.IngestError(413, f"The body is over {service.MAX_BODY_BYTES} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _prepare(
    headers: dict[str, str], source_id: int, raw: bytes, request_id: str, *, on_loop: bool = False
) -> tuple[service.SourceMeta, service.Taken]:
    """Who is asking, for which source, with which events (in a pool thread, or on the loop: see prepare).

    The order of checks is engines/ingest/service.py's, step by step.
    """
    if not on_loop:
        close_old_connections()
    authorization = headers.get("authorization")
    with stage("ingest.auth", service.STAGE_AUTH):
        if authorization:
            token = bearer_token(authorization)
            resolved = apikey_resolve(token) if token else None
            if resolved is None:
                raise service.IngestError(401, "The API key is unknown or revoked.")
            tenant = resolved.tenant
        else:
            # No key: signed BeastFlow events or an upstream's own webhook, routed by the global source id.
            found = tenant_for_source(source_id)
            if found is None:
                if not headers.get("x-beastflow-signature"):
                    raise service.IngestError(401, "Send an API key or a signed body.")
                raise service.IngestError(404, "No such source.")
            tenant = found
        meta = service.source_cache.get(tenant.schema_name, source_id, lambda: _load_meta(tenant, source_id))
        if meta is None:
            raise service.IngestError(404, "No such source.")
        native = service.verify(meta, has_key=bool(authorization), headers=headers, body=raw)
    try:
        with stage("ingest.validate", service.STAGE_VALIDATE):
            taken = service.read(
                meta, native=native, headers=headers, body=raw, content_type=headers.get("content-type", "")
            )
    except service.IngestError:
        with schema_context(meta.schema), connection.cursor() as cursor:
            service.count_push_error(cursor, source_id, scheme=meta.push_scheme if native else None)
        raise
    return meta, taken  # the quota is taken by the group commit, once for the whole group


def _load_meta(tenant: Any, source_id: int) -> service.SourceMeta | None:
    from engines.models import Source

    with schema_context(tenant.schema_name):
        row = (
            Source.objects.filter(pk=source_id)
            .values_list("webhook_secret_encrypted", "data_schema", "push", "push_secret_encrypted")
            .first()
        )
    if row is None:
        return None
    return service.source_meta_from_row(
        source_id=source_id,
        schema=tenant.schema_name,
        tenant_slug=tenant.slug,
        rate=tenant.ingest_rate_per_s,
        burst=tenant.ingest_burst,
        secret_encrypted=row[0],
        data_schema=row[1],
        push=row[2],
        push_secret_encrypted=row[3],
    )


class _CommitConnections:
    """The commit path's PostgreSQL connections: a small pool per process, opened on first use.

    Autocommit connections: each commit sends its own BEGIN and COMMIT and
    sets the tenant's search_path for its transaction only (set_config(...,
    true)), so a connection never carries one tenant's schema into another's
    commit.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._pid = 0

    def get(self) -> ConnectionPool[psycopg.Connection[Any]]:
        if self._pool is None or self._pid != os.getpid():
            with self._lock:
                if self._pool is None or self._pid != os.getpid():
                    self._pool = ConnectionPool(
                        kwargs=_connect_kwargs(),
                        min_size=1,
                        max_size=COMMIT_CONNECTIONS,
                        name="beastflow-ingest-commit",
                        timeout=POOL_WAIT_S,
                        open=True,
                    )
                    self._pid = os.getpid()
        return self._pool


def _connect_kwargs() -> dict[str, Any]:
    settings_dict = connections["default"].settings_dict
    options = {
        name: value
        for name, value in settings_dict.get("OPTIONS", {}).items()
        if name not in ("pool", "server_side_binding", "isolation_level", "assume_role", "cursor_factory")
    }
    given = {
        "dbname": settings_dict.get("NAME"),
        "user": settings_dict.get("USER"),
        "password": settings_dict.get("PASSWORD"),
        "host": settings_dict.get("HOST"),
        "port": settings_dict.get("PORT"),
    }
    return {
        **{name: value for name, value in given.items() if value},
        **options,
        "autocommit": True,
        "application_name": "beastflow-ingest",
    }


_commit_connections = _CommitConnections()

_async_pools: dict[int, tuple[asyncio.AbstractEventLoop, AsyncConnectionPool[psycopg.AsyncConnection[Any]]]] = {}


async def _async_pool() -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
    """The small groups' connections: one pool per event loop (uvicorn runs one per process)."""
    loop = asyncio.get_running_loop()
    found = _async_pools.get(id(loop))
    if found is None or found[0] is not loop:
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            kwargs=_connect_kwargs(),
            min_size=1,
            max_size=COMMIT_CONNECTIONS,
            name="beastflow-ingest-commit-async",
            timeout=POOL_WAIT_S,
            open=False,
        )
        found = _async_pools[id(loop)] = (loop, pool)
        await pool.open()
    return found[1]


async def _commit_group_async(
    schema: str, metas: list[service.SourceMeta], batches: list[PendingBatch]
) -> list[BatchResult | service.IngestError]:
    """`_commit_group` on the event loop, for small groups."""
    refusals = await service.check_quota_each_async(metas, [len(batch.events) for batch in batches])
    admitted = [batch for batch, refusal in zip(batches, refusals, strict=True) if refusal is None]
    committed = iter(await _commit_isolating_async(schema, admitted) if admitted else [])
    results = [refusal if refusal is not None else next(committed) for refusal in refusals]
    changes = [change for result in results if isinstance(result, BatchResult) for change in result.changes]
    if changes:
        with stage("ingest.publish", service.STAGE_PUBLISH):
            await changes_committed_async(schema, changes)
    return results


# -- one batch's failure stays its own -------------------------------------------------
#
# A group commits in one transaction, so one batch the database refuses (data
# validation let through) would roll back every batch of the group. On such a
# refusal each batch of the group is committed again on its own: the others
# commit, only the offender gets its error. A lost connection or a database
# that is down is no batch's fault: it fails the group (503 to each request).


def _refused(exc: psycopg.Error) -> service.IngestError | psycopg.Error:
    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
        log.warning("ingest_batch_refused_by_database", error=str(exc).splitlines()[0] if str(exc) else "")
        return service.IngestError(422, "The database refused this batch's data; nothing of it was stored.")
    return exc


def _commit_isolating(schema: str, batches: list[PendingBatch]) -> list[BatchResult | service.IngestError]:
    try:
        return list(_commit_pipelined(schema, batches))
    except psycopg.OperationalError:
        raise
    except psycopg.Error as exc:
        if len(batches) == 1:
            return [_as_result(_refused(exc))]
    results: list[BatchResult | service.IngestError] = []
    for batch in batches:
        try:
            results.extend(_commit_pipelined(schema, [batch]))
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            results.append(_as_result(_refused(exc)))
    return results


async def _commit_isolating_async(schema: str, batches: list[PendingBatch]) -> list[BatchResult | service.IngestError]:
    try:
        return list(await _commit_pipelined_async(schema, batches))
    except psycopg.OperationalError:
        raise
    except psycopg.Error as exc:
        if len(batches) == 1:
            return [_as_result(_refused(exc))]
    results: list[BatchResult | service.IngestError] = []
    for batch in batches:
        try:
            results.extend(await _commit_pipelined_async(schema, [batch]))
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            results.append(_as_result(_refused(exc)))
    return results


def _as_result(refusal: service.IngestError | psycopg.Error) -> service.IngestError:
    if isinstance(refusal, service.IngestError):
        return refusal
    # Not the data's fault as far as we can tell: this request alone answers 500, logged.
    log.error("ingest_batch_failed", error=str(refusal))
    return service.IngestError(500, "An internal error; it has been logged with the request id.")


async def _commit_pipelined_async(schema: str, batches: list[PendingBatch]) -> list[BatchResult]:
    """`_commit_pipelined` on an asyncio connection: the same two round trips."""
    started = time.perf_counter()
    commit = CommitPlan(batches, timezone.now())
    async with (await _async_pool()).connection() as conn:
        try:
            async with conn.pipeline():
                await conn.execute("BEGIN")
                await conn.execute("SELECT set_config('search_path', %s, true)", [schema])
                first = await _answers_async([await _send_async(conn, statement) for statement in commit.first()])
                sent = [await _send_async(conn, statement) for statement in commit.second(first)]
                await conn.execute("COMMIT")
                second = await _answers_async(sent)
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
            raise
    elapsed = time.perf_counter() - started
    service.COMMIT_SECONDS.observe(elapsed)
    service.STAGE_COMMIT.observe(elapsed)
    return commit.results(second)


async def _send_async(conn: psycopg.AsyncConnection[Any], statement: Statement) -> psycopg.AsyncCursor[Any] | None:
    cursor = await conn.execute(statement.sql, statement.params)
    return cursor if statement.returns_rows else None


async def _answers_async(cursors: list[psycopg.AsyncCursor[Any] | None]) -> list[list[Any] | None]:
    return [None if cursor is None else await cursor.fetchall() for cursor in cursors]


def _commit_group(
    schema: str, metas: list[service.SourceMeta], batches: list[PendingBatch]
) -> list[BatchResult | service.IngestError]:
    """Take the group's quota (one Redis round trip), commit what it admits, publish the changes."""
    started = time.perf_counter()
    refusals = service.check_quota_each(metas, [len(batch.events) for batch in batches])
    admitted = [batch for batch, refusal in zip(batches, refusals, strict=True) if refusal is None]
    committed = iter(_commit_isolating(schema, admitted) if admitted else [])
    results = [refusal if refusal is not None else next(committed) for refusal in refusals]
    changes = [change for result in results if isinstance(result, BatchResult) for change in result.changes]
    if changes:
        with stage("ingest.publish", service.STAGE_PUBLISH):
            changes_committed(schema, changes)
    log.debug("ingest_group_committed", schema=schema, requests=len(batches), ms=(time.perf_counter() - started) * 1000)
    return results


def _commit_pipelined(schema: str, batches: list[PendingBatch]) -> list[BatchResult]:
    """The commit path in two pipelined round trips; returns once COMMIT succeeded."""
    started = time.perf_counter()
    commit = CommitPlan(batches, timezone.now())
    with _commit_connections.get().connection() as conn:
        try:
            with conn.pipeline():
                conn.execute("BEGIN")
                conn.execute("SELECT set_config('search_path', %s, true)", [schema])
                first = _answers([_send(conn, statement) for statement in commit.first()])
                sent = [_send(conn, statement) for statement in commit.second(first)]
                conn.execute("COMMIT")
                second = _answers(sent)
        except BaseException:
            # Nothing was acknowledged; leave no transaction open on a connection going back to the pool.
            with contextlib.suppress(Exception):
                conn.execute("ROLLBACK")
            raise
    elapsed = time.perf_counter() - started
    service.COMMIT_SECONDS.observe(elapsed)
    service.STAGE_COMMIT.observe(elapsed)
    return commit.results(second)


def _send(conn: psycopg.Connection[Any], statement: Statement) -> psycopg.Cursor[Any] | None:
    cursor = conn.execute(statement.sql, statement.params)
    return cursor if statement.returns_rows else None


def _answers(cursors: list[psycopg.Cursor[Any] | None]) -> list[list[Any] | None]:
    # The first fetch syncs the pipeline: one round trip for everything sent so far.
    return [None if cursor is None else cursor.fetchall() for cursor in cursors]
