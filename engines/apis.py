"""The sources API (CONTRACT §3): one view per operation, logic in services."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from beastflow.pagination import paginate_desc
from beastflow.problems import ProblemError
from engines import selectors, sources
from engines.models import Source
from engines.schemas import DataSourceConfig

LIST_PARAMS = [
    OpenApiParameter("limit", int, description="Page size, 1..500 (default 50)."),
    OpenApiParameter("cursor", str, description="next_cursor of the previous page."),
]


def _problem(exc: sources.SourceError) -> ProblemError:
    return ProblemError(exc.status, exc.detail, errors=exc.errors)


def source_or_404(source_id: Any) -> Source:
    source = selectors.source_get(source_id)
    if source is None:
        # Another tenant's source is simply not in this schema: same 404.
        raise ProblemError(404, "No such source.")
    return source


class SourceListCreateApi(APIView):
    @extend_schema(parameters=LIST_PARAMS, summary="List sources, newest first")
    def get(self, request: Request) -> Response:
        page = paginate_desc(
            Source.objects.all(), request.query_params, lambda rows: selectors.sources_render(rows, request=request)
        )
        return Response(page.as_dict())

    @extend_schema(request=DataSourceConfig, summary="Register a source; the webhook secret is shown once")
    def post(self, request: Request) -> Response:
        try:
            source, secret = sources.source_create(spec=sources.parse_spec(request.data))
        except sources.SourceError as exc:
            raise _problem(exc) from exc
        body = selectors.source_render(source, request=request)
        body["webhook_secret"] = secret
        return Response(body, status=201)


class SourceDetailApi(APIView):
    @extend_schema(summary="One source")
    def get(self, request: Request, source_id: str) -> Response:
        return Response(selectors.source_render(source_or_404(source_id), request=request))

    @extend_schema(request=dict[str, Any], summary="Change a source (top-level fields replace)")
    def patch(self, request: Request, source_id: str) -> Response:
        source = source_or_404(source_id)
        try:
            source = sources.source_update(source=source, changes=request.data)
        except sources.SourceError as exc:
            raise _problem(exc) from exc
        return Response(selectors.source_render(source, request=request))

    @extend_schema(summary="Delete a source with its records and events")
    def delete(self, request: Request, source_id: str) -> Response:
        sources.source_delete(source=source_or_404(source_id))
        return Response(status=204)
