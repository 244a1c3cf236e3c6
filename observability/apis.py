"""Capacity and failure recordings over the API (docs/observability.md).

Capacity: the tenant's own (`GET /api/v1/capacity`) and the platform's, for staff.
Failure recordings: `GET /api/v1/failures/{id}/recording` downloads one,
`POST` records one now; another tenant's failure is a 404, like a missing one.

The tenant is the API key's: its report holds its own measurements only.
The platform report (`GET /api/v1/platform/capacity`) covers every tenant,
the queues and the monitor: it is for operators, so it takes a signed-in
staff user's session (the console's login), never a tenant's API key.
"""

from __future__ import annotations

from typing import Any, cast

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from beastflow.problems import ProblemError
from beastflow.strict_input import StrictInputSerializer
from observability.capacity import DEFAULT_WINDOW, WINDOWS, platform_capacity, tenants_capacity
from observability.models import FailureRecording
from observability.recording import AFTER_S, BEFORE_S, recording_store
from tenants.models import Tenant
from tenants.selectors import ResolvedKey
from tenants.staff import is_platform_staff


class WindowInput(serializers.Serializer):  # type: ignore[type-arg]
    window = serializers.ChoiceField(choices=sorted(WINDOWS), default=DEFAULT_WINDOW, required=False)


class LatencyOutput(serializers.Serializer):  # type: ignore[type-arg]
    p50_ms = serializers.FloatField(allow_null=True)
    p95_ms = serializers.FloatField(allow_null=True)
    p99_ms = serializers.FloatField(allow_null=True)


class RecommendationOutput(serializers.Serializer):  # type: ignore[type-arg]
    severity = serializers.ChoiceField(choices=["info", "warning", "critical"])
    code = serializers.CharField(help_text="What the rule saw: queue_lag_rising, ingest_quota, polls_failing, ...")
    subject = serializers.CharField(help_text="The queue, `monitor`, or the tenant's slug.")
    message = serializers.CharField(help_text="What was measured and what to do, in one sentence.")


class IngestOutput(serializers.Serializer):  # type: ignore[type-arg]
    requests = serializers.IntegerField()
    events = serializers.IntegerField()
    requests_per_s = serializers.FloatField()
    events_per_s = serializers.FloatField()
    peak_events_per_s = serializers.FloatField(help_text="The busiest minute's rate: what the quota is held against.")
    quota_events_per_s = serializers.IntegerField()
    quota_used_pct = serializers.FloatField(allow_null=True)
    headroom_pct = serializers.FloatField(allow_null=True)
    failed = serializers.IntegerField(help_text="Answers 4xx/5xx other than 429.")
    throttled = serializers.IntegerField(help_text="Answers 429: over the ingest quota.")
    latency = LatencyOutput(help_text="From a request's arrival to its answer, the group commit's wait included.")
    events_per_s_by_minute = serializers.ListField(child=serializers.FloatField(), help_text="Oldest first.")


class PollsOutput(serializers.Serializer):  # type: ignore[type-arg]
    runs = serializers.IntegerField()
    failed = serializers.IntegerField()
    error_pct = serializers.FloatField(allow_null=True)
    runs_per_min = serializers.FloatField()
    events = serializers.IntegerField()
    latency = LatencyOutput(help_text="One poll, every page, start to finish.")


class CallbacksOutput(serializers.Serializer):  # type: ignore[type-arg]
    deliveries = serializers.IntegerField()
    failed = serializers.IntegerField()
    failure_pct = serializers.FloatField(allow_null=True)
    changes_per_s = serializers.FloatField(help_text="Changes delivered (succeeded attempts).")
    latency = LatencyOutput(help_text="One delivery attempt: the receiver's answer time.")
    backlog_s = serializers.FloatField(
        allow_null=True, help_text="Age of the oldest change an active subscription has not had; null when caught up."
    )


class SourcesOutput(serializers.Serializer):  # type: ignore[type-arg]
    count = serializers.IntegerField()
    max = serializers.IntegerField()
    used_pct = serializers.FloatField(allow_null=True)
    headroom_pct = serializers.FloatField(allow_null=True)


class TenantCapacityOutput(serializers.Serializer):  # type: ignore[type-arg]
    tenant = serializers.CharField()
    window = serializers.ChoiceField(choices=sorted(WINDOWS))
    window_s = serializers.IntegerField()
    ingest = IngestOutput()
    polls = PollsOutput()
    callbacks = CallbacksOutput()
    sources = SourcesOutput()
    recommendations = RecommendationOutput(many=True)


class QueueOutput(serializers.Serializer):  # type: ignore[type-arg]
    queue = serializers.CharField()
    depth = serializers.IntegerField()
    lag_s = serializers.FloatField(allow_null=True, help_text="How long its oldest message has waited.")
    lag_trend_s_per_min = serializers.FloatField(allow_null=True, help_text="Over the last ten minutes' samples.")
    readiness_bound_s = serializers.FloatField(allow_null=True)
    headroom_pct = serializers.FloatField(allow_null=True, help_text="Lag left before /readyz fails.")
    samples = serializers.IntegerField()


class MonitorOutput(serializers.Serializer):  # type: ignore[type-arg]
    lag_s = serializers.FloatField(allow_null=True)
    lag_trend_s_per_min = serializers.FloatField(allow_null=True)


class PlatformCapacityOutput(serializers.Serializer):  # type: ignore[type-arg]
    window = serializers.ChoiceField(choices=sorted(WINDOWS))
    window_s = serializers.IntegerField()
    queues = QueueOutput(many=True)
    monitor = MonitorOutput()
    tenants = TenantCapacityOutput(many=True)
    recommendations = RecommendationOutput(many=True)


WINDOW_PARAM = OpenApiParameter("window", str, enum=sorted(WINDOWS), description="15m (default) or 1h.")


def _window(request: Request) -> str:
    given = WindowInput(data=request.query_params)
    given.is_valid(raise_exception=True)  # 400 problem+json naming `window`
    return str(given.validated_data.get("window") or DEFAULT_WINDOW)


class CapacityApi(APIView):
    @extend_schema(
        operation_id="capacity_get",
        summary="This tenant's capacity: ingest, poll and callback latency and throughput, headroom, advice",
        parameters=[WINDOW_PARAM],
        responses=TenantCapacityOutput,
    )
    def get(self, request: Request) -> Response:
        window = _window(request)
        # Read afresh: the key's tenant is cached for seconds, and a quota just raised must show.
        resolved = cast(ResolvedKey, request.auth)
        tenant = Tenant.objects.get(pk=resolved.tenant.pk)
        [report] = tenants_capacity([tenant], window=window)
        return Response(TenantCapacityOutput(report).data)


class IsPlatformStaff(BasePermission):
    message = "Staff only: sign in to the console as a staff user."

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_platform_staff(request.user)


class PlatformCapacityApi(APIView):
    authentication_classes = [SessionAuthentication]
    permission_classes = [IsPlatformStaff]

    # Not in the published document: that is the tenants' API, every operation of it bearer-authenticated;
    # this one is the operators', behind the console's staff login (docs/observability.md says its shape).
    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        return Response(PlatformCapacityOutput(platform_capacity(window=_window(request))).data)


# -- failure recordings ---------------------------------------------------------------


class RecordingInput(StrictInputSerializer):  # JSON numbers only: "60" is refused, not coerced
    before_s = serializers.FloatField(min_value=0, max_value=3600, default=BEFORE_S, required=False)
    after_s = serializers.FloatField(min_value=0, max_value=3600, default=AFTER_S, required=False)


class RecordingOutput(serializers.Serializer):  # type: ignore[type-arg]
    failure = serializers.IntegerField()
    source_id = serializers.IntegerField(allow_null=True)
    window_start = serializers.DateTimeField()
    window_end = serializers.DateTimeField()
    judgements = serializers.IntegerField(help_text="Monitor judgements recorded (what a replay decides again).")
    size_bytes = serializers.IntegerField()
    truncated = serializers.BooleanField(help_text="Parts were thinned to keep it under the size cap.")
    created_at = serializers.DateTimeField()
    download = serializers.CharField(help_text="Where to GET the document.")


def _failure_or_404(failure_id: Any) -> Any:
    from healing import selectors as healing_selectors

    failure = healing_selectors.failure_get(failure_id)
    if failure is None:
        raise ProblemError(404, "No such failure.")  # another tenant's is not in this schema: the same 404
    return failure


def _recording_render(recording: FailureRecording) -> dict[str, Any]:
    return {
        "failure": recording.failure_id,
        "source_id": recording.source_id,
        "window_start": recording.window_start,
        "window_end": recording.window_end,
        "judgements": recording.judgements,
        "size_bytes": recording.size_bytes,
        "truncated": recording.truncated,
        "created_at": recording.created_at,
        "download": f"/api/v1/failures/{recording.failure_id}/recording",
    }


class FailureRecordingApi(APIView):
    @extend_schema(
        operation_id="failures_recording_get",
        summary="Download a failure's recording (traffic and monitor inputs around it), for replay_failure",
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, failure_id: str) -> Response:
        failure = _failure_or_404(failure_id)
        recording = FailureRecording.objects.filter(failure=failure).first()
        if recording is None:
            raise ProblemError(404, "This failure has no recording; POST to this URL to record it now.")
        response = Response(recording.data)
        response["Content-Disposition"] = f'attachment; filename="failure-{failure.pk}-recording.json"'
        return response

    @extend_schema(
        operation_id="failures_recording_create",
        summary="Record a failure now: the window around its first sighting, replacing an earlier recording",
        request=RecordingInput,
        responses={201: RecordingOutput},
    )
    def post(self, request: Request, failure_id: str) -> Response:
        failure = _failure_or_404(failure_id)
        given = RecordingInput(data=request.data)
        given.is_valid(raise_exception=True)
        recording = recording_store(
            failure=failure, before_s=given.validated_data["before_s"], after_s=given.validated_data["after_s"]
        )
        return Response(RecordingOutput(_recording_render(recording)).data, status=201)
