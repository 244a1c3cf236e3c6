"""The ingest endpoint through Django (docs/contract.md §4; upstreams' own webhooks: docs/push.md).

`POST /api/v1/sources/{id}/events`. The raw ASGI fast path serves the same
URL in front of Django in production (engines/ingest/fastpath.py); this
view is the reference path, the fallback for WSGI, and what the in-process
test client reaches. Both call engines/ingest/service.py.
"""

from __future__ import annotations

from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from beastflow.problems import problem_response
from beastflow.tenancy import PUBLIC, current_schema, current_tenant
from engines.ingest import service
from engines.ingest.commit import PendingBatch
from engines.models import Source
from engines.publish import changes_committed


def _load_meta(source_id: int) -> service.SourceMeta | None:
    source = (
        Source.objects.filter(pk=source_id)
        .only("webhook_secret_encrypted", "data_schema", "push", "push_secret_encrypted")
        .first()
    )
    if source is None:
        return None
    tenant = current_tenant()
    return service.source_meta_from_row(
        source_id=source_id,
        schema=tenant.schema_name,
        tenant_slug=tenant.slug,
        rate=tenant.ingest_rate_per_s,
        burst=tenant.ingest_burst,
        secret_encrypted=source.webhook_secret_encrypted,
        data_schema=source.data_schema,
        push=source.push,
        push_secret_encrypted=source.push_secret_encrypted,
    )


def _error(exc: service.IngestError) -> HttpResponse:
    service.record_outcome(exc.status)
    return problem_response(exc.status, exc.detail, errors=exc.errors, headers=exc.headers)


@csrf_exempt
def ingest_events(request: HttpRequest, source_id: int) -> HttpResponse:
    if request.method != "POST":
        return problem_response(405, "POST events here.", headers={"Allow": "POST"})
    if getattr(request, "api_key_invalid", False):
        return _error(service.IngestError(401, "The API key is unknown or revoked."))
    has_key = getattr(request, "api_key", None) is not None
    if current_schema() == PUBLIC:
        # No key, and no source of that id to route by (tenants/middleware.py).
        if not request.headers.get(service.SIGNATURE_HEADER):
            return _error(service.IngestError(401, "Send an API key or a signed body."))
        return _error(service.IngestError(404, "No such source."))
    declared = int(request.headers.get("Content-Length") or 0)
    if declared > service.MAX_BODY_BYTES:
        return _error(service.IngestError(413, f"The body is over {service.MAX_BODY_BYTES} bytes."))
    meta = service.source_cache.get(current_schema(), source_id, lambda: _load_meta(source_id))
    if meta is None:
        return _error(service.IngestError(404, "No such source."))
    body = request.read()
    # Lower-cased names, as the fast path has them from ASGI (and as push mappings read them).
    headers = {name.lower(): value for name, value in request.headers.items()}
    try:
        native = service.verify(meta, has_key=has_key, headers=headers, body=body)
        try:
            taken = service.read(
                meta, native=native, headers=headers, body=body, content_type=request.content_type or ""
            )
        except service.IngestError:
            with connection.cursor() as cursor:
                service.count_push_error(cursor, source_id, scheme=meta.push_scheme if native else None)
            raise
        if taken.events:
            service.check_quota(meta, len(taken.events))
    except service.IngestError as exc:
        return _error(exc)
    result = None
    if taken.events:
        schema = meta.schema
        with transaction.atomic(), connection.cursor() as cursor:
            [result] = service.commit(cursor, [PendingBatch(source_id=source_id, events=taken.events, origin="push")])
            if result.changes:
                changes = result.changes
                transaction.on_commit(lambda: changes_committed(schema, changes))
        if result.source_missing:
            return _error(service.IngestError(404, "No such source."))
    service.record_outcome(202, result, ignored=taken.ignored)
    return JsonResponse(service.answer(taken, result), status=202)
