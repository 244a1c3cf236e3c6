"""The ingest endpoint as raw ASGI in front of Django, with group commit.

Django's ASGI request cycle costs more than the work of a single-event
webhook (STACK.md: ~5x its WSGI path), so `POST /api/v1/sources/{id}/events`
is answered here without it. Everything it decides comes from
engines/ingest/service.py, the same as the Django view.

Group commit: requests of one tenant queue for that tenant's committer,
which commits whatever has queued in one transaction while the previous
one ran. Each request still gets its own answer, and only after the commit.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import structlog
from django.db import close_old_connections, connection, transaction
from django_tenants.utils import schema_context

from beastflow import correlation
from beastflow.problems import CONTENT_TYPE, problem_body
from engines.ingest import service
from engines.ingest.commit import BatchResult, PendingBatch
from engines.ingest.validation import Event
from engines.publish import changes_committed
from tenants.middleware import bearer_token
from tenants.selectors import apikey_resolve, tenant_for_source

log = structlog.get_logger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

INGEST_PATH = re.compile(r"^/api/v1/sources/(\d{1,18})/events/?$")
MAX_EVENTS_PER_COMMIT = 5_000


@dataclass
class _Waiting:
    batch: PendingBatch
    future: asyncio.Future[BatchResult]


@dataclass
class _Committer:
    queue: list[_Waiting] = field(default_factory=list)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class IngestFastPath:
    def __init__(self, app: Any, *, threads: int = 8) -> None:
        self.app = app
        # Parsing, lookups and commits are blocking work: they run here, off the event loop.
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ingest")
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
        loop = asyncio.get_running_loop()
        status, body, extra = 500, b"", {}
        try:
            declared = int(headers.get("content-length") or 0)
            if declared > service.MAX_BODY_BYTES:
                raise service.IngestError(413, f"The body is over {service.MAX_BODY_BYTES} bytes.")
            raw = await _read_body(receive)
            meta, events = await loop.run_in_executor(self.pool, _prepare, headers, source_id, raw, request_id)
            result = await self.commit(meta.schema, PendingBatch(source_id=source_id, events=events))
            if result.source_missing:
                raise service.IngestError(404, "No such source.")
            service.record_outcome(202, result)
            status = 202
            body = json.dumps({"accepted": result.accepted, "duplicates": result.duplicates}).encode()
            content_type = "application/json"
        except service.IngestError as exc:
            service.record_outcome(exc.status)
            status, extra = exc.status, exc.headers
            body = json.dumps(problem_body(exc.status, exc.detail, errors=exc.errors)).encode()
            content_type = CONTENT_TYPE
            log.info("ingest_refused", status=status, source=source_id, correlation_id=request_id, detail=exc.detail)
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

    async def commit(self, schema: str, batch: PendingBatch) -> BatchResult:
        committer = self.committers.get(schema)
        if committer is None:
            committer = self.committers[schema] = _Committer()
        future: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        committer.queue.append(_Waiting(batch, future))
        committer.wakeup.set()
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
                results = await loop.run_in_executor(self.pool, _commit_group, schema, [w.batch for w in taken])
            except Exception as exc:
                for waiting in taken:
                    if not waiting.future.done():
                        waiting.future.set_exception(exc)
                continue
            for waiting, result in zip(taken, results, strict=True):
                if not waiting.future.done():
                    waiting.future.set_result(result)
        committer.wakeup.clear()


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
    headers: dict[str, str], source_id: int, raw: bytes, request_id: str
) -> tuple[service.SourceMeta, list[Event]]:
    """Who is asking, for which source, with which events (in a pool thread)."""
    close_old_connections()
    signature = headers.get("x-beastflow-signature")
    authorization = headers.get("authorization")
    if authorization:
        token = bearer_token(authorization)
        resolved = apikey_resolve(token) if token else None
        if resolved is None:
            raise service.IngestError(401, "The API key is unknown or revoked.")
        tenant = resolved.tenant
    elif signature:
        found = tenant_for_source(source_id)
        if found is None:
            raise service.IngestError(404, "No such source.")
        tenant = found
    else:
        raise service.IngestError(401, "Send an API key or a signed body.")
    meta = service.source_cache.get(tenant.schema_name, source_id, lambda: _load_meta(tenant, source_id))
    if meta is None:
        raise service.IngestError(404, "No such source.")
    service.authorize(meta, has_key=bool(authorization), signature=signature, body=raw)
    try:
        events = service.parse(meta, raw, headers.get("content-type", ""))
    except service.IngestError:
        with schema_context(meta.schema), connection.cursor() as cursor:
            service.count_push_error(cursor, source_id)
        raise
    service.check_quota(meta, len(events))
    return meta, events


def _load_meta(tenant: Any, source_id: int) -> service.SourceMeta | None:
    from engines.models import Source

    with schema_context(tenant.schema_name):
        row = Source.objects.filter(pk=source_id).values_list("webhook_secret_encrypted", "data_schema").first()
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
    )


def _commit_group(schema: str, batches: list[PendingBatch]) -> list[BatchResult]:
    close_old_connections()
    started = time.perf_counter()
    with schema_context(schema):
        with transaction.atomic(), connection.cursor() as cursor:
            results = service.commit(cursor, batches)
        changes = [change for result in results for change in result.changes]
        if changes:
            changes_committed(schema, changes)
    log.debug("ingest_group_committed", schema=schema, requests=len(batches), ms=(time.perf_counter() - started) * 1000)
    return results
