"""The ingest endpoint through Django (docs/contract.md §4; upstreams' own webhooks: docs/push.md).

`POST /api/v1/sources/{id}/events`. The raw ASGI fast path serves the same
URL in front of Django in production (engines/ingest/fastpath.py); this
view is the reference path, the fallback for WSGI, and what the in-process
test client reaches. Both run engines/ingest/steps.py: the same steps in the
same order, the same answers. This view does their I/O the plain way: the
body from request.read(), the checks inline, the commit alone in Django's
transaction (under the test client, the test's).
"""

from __future__ import annotations

import functools
from typing import Any

from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django_tenants.utils import schema_context

from beastflow import sansio
from beastflow.problems import problem_response
from engines.ingest import service, steps
from engines.publish import changes_committed


@csrf_exempt
def ingest_events(request: HttpRequest, source_id: int) -> HttpResponse:
    if request.method != "POST":
        return problem_response(405, "POST events here.", headers={"Allow": "POST"})
    # Lower-cased names, as the fast path has them from ASGI (and as push mappings read them).
    headers = {name.lower(): value for name, value in request.headers.items()}
    reply = sansio.run(steps.push(source_id, headers), functools.partial(_perform, request))
    response = JsonResponse(reply.body, status=reply.status, content_type=reply.content_type)
    for name, value in reply.headers.items():
        response[name] = value
    return response


def _perform(request: HttpRequest, op: Any) -> Any:
    """This view's way of each step engines/ingest/steps.py yields."""
    if op is steps.READ_BODY:
        return request.read()
    if op is steps.DATABASE:
        return None  # ServiceUnavailableMiddleware took this step before any view ran
    if isinstance(op, steps.Admit):
        return steps.admit(op.source_id, op.headers, op.body)
    [result] = sansio.run(steps.settle(op.meta.schema, [op.meta], [op.batch]), _in_django)
    return steps.outcome(result)


def _in_django(op: Any) -> Any:
    if isinstance(op, steps.CommitBatches):
        with schema_context(op.schema), transaction.atomic(), connection.cursor() as cursor:
            return service.commit(cursor, op.batches)
    if isinstance(op, steps.TakeQuota):
        return service.take_quota(op.tenant, op.costs, rate=op.rate, burst=op.burst)
    schema, changes = op.schema, op.changes
    # After the commit: at once in autocommit, when the outermost transaction commits inside one.
    transaction.on_commit(lambda: changes_committed(schema, changes))
    return None
