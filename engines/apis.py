"""The sources API (docs/contract.md §3): one view per operation, logic in services."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from beastflow.openapi import PAGE_PARAMETERS, problems
from beastflow.pagination import paginate_desc, parse_limit
from beastflow.problems import ProblemError
from engines import openapi as docs
from engines import selectors, source_ops, sources
from engines.models import ModeSwitch, PollRun, PollTrigger, ReconcileTrigger, Source
from engines.partitions import changes_floor
from engines.reconcile import runs as reconcile_runs
from engines.schemas import DataSourceConfig


def _problem(exc: sources.SourceError) -> ProblemError:
    return ProblemError(exc.status, exc.detail, errors=exc.errors)


def source_or_404(source_id: Any) -> Source:
    source = selectors.source_get(source_id)
    if source is None:
        # Another tenant's source is simply not in this schema: same 404.
        raise ProblemError(404, "No such source.")
    return source


class SourceListCreateApi(APIView):
    @extend_schema(
        operation_id="sources_list",
        parameters=PAGE_PARAMETERS,
        responses={200: docs.SourcePage},
        summary="List sources, newest first",
    )
    def get(self, request: Request) -> Response:
        page = paginate_desc(
            Source.objects.all(), request.query_params, lambda rows: selectors.sources_render(rows, request=request)
        )
        return Response(page.as_dict())

    @extend_schema(
        operation_id="sources_create",
        request=DataSourceConfig,
        responses={201: docs.SourceCreatedOut, **problems(409, 422)},
        summary="Register a source; the webhook secret is shown once",
        examples=[
            OpenApiExample(
                "a GitHub repository's issues, by preset",
                request_only=True,
                value={
                    "name": "octo-issues",
                    "preset": "github-issues",
                    "config": {
                        "owner": "octocat",
                        "repo": "hello-world",
                        "headers": {"Authorization": "Bearer <token>"},
                    },
                    "push": {"secret": "the webhook secret set on GitHub"},
                },
            ),
            OpenApiExample(
                "a change feed polled over HTTP",
                request_only=True,
                value={
                    "name": "orders",
                    "connector": "http",
                    "config": {"poll_url": "https://upstream.example/changes"},
                },
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        try:
            source, secret = sources.source_create(spec=sources.parse_spec(request.data))
        except sources.SourceError as exc:
            raise _problem(exc) from exc
        body = selectors.source_render(source, request=request)
        body["webhook_secret"] = secret
        return Response(body, status=201)


class SourceDetailApi(APIView):
    @extend_schema(operation_id="sources_get", responses={200: docs.SourceOut}, summary="One source")
    def get(self, request: Request, source_id: str) -> Response:
        return Response(selectors.source_render(source_or_404(source_id), request=request))

    @extend_schema(
        operation_id="sources_update",
        request=docs.SourcePatch,
        responses={200: docs.SourceOut, **problems(409, 422)},
        summary="Change a source (top-level fields replace)",
        examples=[OpenApiExample("pause", request_only=True, value={"paused": True})],
    )
    def patch(self, request: Request, source_id: str) -> Response:
        source = source_or_404(source_id)
        try:
            source = sources.source_update(source=source, changes=request.data)
        except sources.SourceError as exc:
            raise _problem(exc) from exc
        return Response(selectors.source_render(source, request=request))

    @extend_schema(
        operation_id="sources_delete", responses={204: None}, summary="Delete a source with its records and events"
    )
    def delete(self, request: Request, source_id: str) -> Response:
        sources.source_delete(source=source_or_404(source_id))
        return Response(status=204)


class RecordListApi(APIView):
    @extend_schema(
        operation_id="records_list",
        parameters=PAGE_PARAMETERS,
        responses={200: docs.RecordPage},
        summary="A source's live records, newest first",
    )
    def get(self, request: Request, source_id: str) -> Response:
        source = source_or_404(source_id)
        page = paginate_desc(
            selectors.records_live(source.pk),
            request.query_params,
            lambda rows: [selectors.record_render(row) for row in rows],
        )
        return Response(page.as_dict())


class RecordDetailApi(APIView):
    @extend_schema(
        operation_id="records_get",
        responses={200: docs.RecordOut},
        summary="One record by key (404 when absent or deleted)",
    )
    def get(self, request: Request, source_id: str, key: str) -> Response:
        source = source_or_404(source_id)
        # A NUL cannot be in a stored key (PostgreSQL refuses it): no such record, not a 500.
        record = None if "\x00" in key else selectors.record_get(source.pk, key)
        if record is None:
            raise ProblemError(404, "No such record.")
        return Response(selectors.record_render(record))


class ChangeFeedApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "after", {"type": "integer", "minimum": 0}, description="Return changes with seq > after (default 0)."
            ),
            OpenApiParameter("source", int, description="Only this source's changes."),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 500},
                description="Page size, 1..500 (default 100).",
            ),
        ],
        operation_id="changes_list",
        responses={200: docs.ChangeFeedPage, **problems(410)},
        summary="Changes in commit order; page with next_after",
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        after = _int_param(params.get("after"), "after", default=0)
        source_id = None
        if params.get("source") not in (None, ""):
            source_id = source_or_404(params.get("source")).pk
        limit = parse_limit(params.get("limit"), default=100)
        results = selectors.changes_after(after, source_id=source_id, limit=limit)
        # Read after the page: retention raises the floor before it drops
        # changes, so a page read after a drop always finds the new floor.
        floor = changes_floor()
        if after < floor:
            raise changes_gone(after=after, floor=floor)
        return Response({"results": results, "next_after": results[-1]["seq"] if results else after})


def changes_gone(*, after: int, floor: int) -> ProblemError:
    """410: the changes after `after` up to the floor were removed by retention (docs/scaling.md)."""
    problem = ProblemError(
        410,
        f"Changes up to seq {floor} are no longer kept (retention); resume with after >= {floor}, "
        "after re-reading the records for the state.",
        errors=[{"field": "after", "message": f"must be at least {floor}"}],
    )
    problem.problem["floor"] = floor
    return problem


def _int_param(raw: str | None, name: str, *, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ProblemError(400, f"{name} must be an integer", errors=[{"field": name, "message": "not an integer"}])
    if value < 0:
        raise ProblemError(400, f"{name} must be >= 0", errors=[{"field": name, "message": "negative"}])
    return value


class SourceHealthApi(APIView):
    @extend_schema(
        operation_id="sources_health",
        responses={200: docs.SourceHealthOut},
        summary="The source's mode, health score and stream signals",
    )
    def get(self, request: Request, source_id: str) -> Response:
        return Response(selectors.source_health(source_or_404(source_id)))


class ModeSwitchListApi(APIView):
    @extend_schema(
        operation_id="mode_switches_list",
        parameters=PAGE_PARAMETERS,
        responses={200: docs.ModeSwitchPage},
        summary="Mode switches with reason and signals, newest first",
    )
    def get(self, request: Request, source_id: str) -> Response:
        source = source_or_404(source_id)
        page = paginate_desc(
            ModeSwitch.objects.filter(source=source),
            request.query_params,
            lambda rows: [selectors.mode_switch_render(row) for row in rows],
        )
        return Response(page.as_dict())


class PollRunListApi(APIView):
    @extend_schema(
        operation_id="polls_list",
        parameters=PAGE_PARAMETERS,
        responses={200: docs.PollRunPage},
        summary="Polls of the source's change feed, newest first",
    )
    def get(self, request: Request, source_id: str) -> Response:
        source = source_or_404(source_id)
        page = paginate_desc(
            PollRun.objects.filter(source=source),
            request.query_params,
            lambda rows: [selectors.poll_run_render(row) for row in rows],
        )
        return Response(page.as_dict())


class SourcePollApi(APIView):
    @extend_schema(
        operation_id="sources_poll",
        request=None,
        responses={202: docs.PollQueuedOut},
        summary="Poll the source now (202; the poll runs on a worker)",
    )
    def post(self, request: Request, source_id: str) -> Response:
        source = source_or_404(source_id)
        source_ops.request_poll(source.pk, PollTrigger.MANUAL)
        return Response({"source": source.pk, "queued": True}, status=202)


class SourceReconcileApi(APIView):
    @extend_schema(
        operation_id="sources_reconcile",
        request=None,
        responses={202: docs.ReconcileQueuedOut, **problems(409, 422)},
        summary="Reconcile the source now (202 with the run; the running one when a run is under way)",
    )
    def post(self, request: Request, source_id: str) -> Response:
        source = source_or_404(source_id)
        try:
            run, created = reconcile_runs.reconcile_request(source=source, trigger=ReconcileTrigger.MANUAL)
        except reconcile_runs.ReconcileError as exc:
            raise ProblemError(exc.status, exc.detail) from exc
        return Response({"run": run.pk, "status": run.status, "queued": created}, status=202)


class ReconciliationListApi(APIView):
    @extend_schema(
        operation_id="reconciliations_list",
        parameters=PAGE_PARAMETERS,
        responses={200: docs.ReconciliationPage},
        summary="Reconciliation runs of the source, newest first",
    )
    def get(self, request: Request, source_id: str) -> Response:
        source = source_or_404(source_id)
        page = paginate_desc(
            selectors.reconciliations_of(source.pk),
            request.query_params,
            lambda rows: [selectors.reconciliation_render(row) for row in rows],
        )
        return Response(page.as_dict())
