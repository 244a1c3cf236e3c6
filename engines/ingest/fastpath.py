"""The ingest endpoint as raw ASGI in front of Django, with group commit.

Django's ASGI request cycle costs more than the work of a single-event
webhook (~5x its WSGI path: docs/performance.md, "The stack's ceilings"), so `POST /api/v1/sources/{id}/events`
is answered here without it. It runs the same steps as the Django view, in
the same order, with the same answers (engines/ingest/steps.py); what is its
own is how it does their I/O: the body from ASGI messages, the checks on the
event loop when the caches answer, the commit grouped per tenant.

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
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
import structlog
from django.core.exceptions import SynchronousOnlyOperation
from django.db import close_old_connections, connections
from django.utils import timezone
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from beastflow import correlation, otel, sansio, unavailable
from beastflow.ingest_route import INGEST_PATH, Receive, Scope, Send
from beastflow.problems import CONTENT_TYPE, problem_body
from engines.ingest import service, steps
from engines.ingest.commit import BatchResult, CommitPlan, PendingBatch, Statement
from engines.publish import changes_committed, changes_committed_async
from tenants.selectors import CacheMiss

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
        async def perform(op: Any) -> Any:  # the fast path's way of each step engines/ingest/steps.py yields
            if op is steps.READ_BODY:
                return await _read_body(receive)
            if op is steps.DATABASE:
                if not unavailable.database.admit():  # down a moment ago: do not wait for a pool connection
                    raise unavailable.DatabaseKnownDownError("the database is down")
                return None
            if isinstance(op, steps.Admit):
                return await self.prepare(op.headers, op.source_id, op.body)
            return await self.commit(op.meta, op.batch)

        extra: Mapping[str, str] = {}
        try:
            reply = await sansio.arun(steps.push(source_id, headers), perform)
            if reply.status == 202:
                unavailable.database.succeeded()
            status, content_type, extra = reply.status, reply.content_type, reply.headers
            body = json.dumps(reply.body).encode()
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
            status = 500
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
        self, headers: Mapping[str, str], source_id: int, raw: bytes
    ) -> tuple[service.SourceMeta, service.Taken]:
        """`steps.admit` on the event loop when it can be, else in a thread.

        A small body whose key, source and tenant are in the in-process
        caches needs no database and a few tens of microseconds: it is
        checked right here, saving two thread hand-offs. Anything that would
        query (a cache miss, counting a push error) raises CacheMiss first,
        without touching Django's database layer (whose connection object,
        made for the request's task, would be left to the cyclic collector:
        at 1,000 tenants, where most pushes miss, the web grew ~13 MB a
        minute between full collections; bench/web_memory.py), and the
        whole request is then prepared in a thread like a large body.
        SynchronousOnlyOperation stays caught: a query this path does not
        know of yet is still sent to the thread, not answered 500.
        """
        if len(raw) <= INLINE_BODY_BYTES:
            try:
                return steps.admit(source_id, headers, raw, cached_only=True)
            except (CacheMiss, SynchronousOnlyOperation):
                pass
        loop = asyncio.get_running_loop()
        # In the request's context: its trace (and log context) continue in the thread.
        run = contextvars.copy_context().run
        return await loop.run_in_executor(self.pool, run, _admit_in_thread, source_id, headers, raw)

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
        if size > service.MAX_BODY_BYTES:  # refused as it is read: never held whole
            raise steps.too_big()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _admit_in_thread(
    source_id: int, headers: Mapping[str, str], raw: bytes
) -> tuple[service.SourceMeta, service.Taken]:
    close_old_connections()
    return steps.admit(source_id, headers, raw)


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


# -- the group's quota, commit and publish: steps.settle, from a thread or on the loop ---------
#
# The steps are engines/ingest/steps.py's, once; these are only the two ways
# of doing their I/O. A small group runs on the event loop, with asyncio
# clients (no hand-off to a thread and back, no wait for the GIL between the
# two round trips); a larger one in a commit thread, with blocking clients.


def _commit_group(
    schema: str, metas: list[service.SourceMeta], batches: list[PendingBatch]
) -> list[BatchResult | service.IngestError]:
    """Take the group's quota (one Redis round trip), commit what it admits, publish the changes: in a thread."""
    started = time.perf_counter()
    results = sansio.run(steps.settle(schema, metas, batches), _in_thread)
    log.debug("ingest_group_committed", schema=schema, requests=len(batches), ms=(time.perf_counter() - started) * 1000)
    return results


async def _commit_group_async(
    schema: str, metas: list[service.SourceMeta], batches: list[PendingBatch]
) -> list[BatchResult | service.IngestError]:
    """`_commit_group` on the event loop, for small groups."""
    return await sansio.arun(steps.settle(schema, metas, batches), _on_loop)


def _commit_isolating(schema: str, batches: list[PendingBatch]) -> list[BatchResult | service.IngestError]:
    """`steps.isolating` on this path's blocking connections: a refused batch fails alone."""
    return sansio.run(steps.isolating(schema, batches), _in_thread)


def _in_thread(op: Any) -> Any:
    if isinstance(op, steps.CommitBatches):
        return _commit_pipelined(op.schema, op.batches)
    if isinstance(op, steps.TakeQuota):
        return service.take_quota(op.tenant, op.costs, rate=op.rate, burst=op.burst)
    changes_committed(op.schema, op.changes)
    return None


async def _on_loop(op: Any) -> Any:
    if isinstance(op, steps.CommitBatches):
        return await _commit_pipelined_async(op.schema, op.batches)
    if isinstance(op, steps.TakeQuota):
        return await service.take_quota_async(op.tenant, op.costs, rate=op.rate, burst=op.burst)
    await changes_committed_async(op.schema, op.changes)
    return None


# -- the commit in two pipelined round trips ---------------------------------------------
#
# Twins on purpose: they are the I/O itself. psycopg's Connection and
# AsyncConnection are different types whose every call is awaited or not, and
# the order of the calls is what makes two round trips (the second round is
# sent, COMMIT after it, and only then is anything fetched). What they send
# is CommitPlan's (engines/ingest/commit.py, pure), shared.


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
    return _committed(commit, second, started)


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
    return _committed(commit, second, started)


def _committed(commit: CommitPlan, second: list[list[Any] | None], started: float) -> list[BatchResult]:
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


async def _send_async(conn: psycopg.AsyncConnection[Any], statement: Statement) -> psycopg.AsyncCursor[Any] | None:
    cursor = await conn.execute(statement.sql, statement.params)
    return cursor if statement.returns_rows else None


async def _answers_async(cursors: list[psycopg.AsyncCursor[Any] | None]) -> list[list[Any] | None]:
    return [None if cursor is None else await cursor.fetchall() for cursor in cursors]
