"""Capacity over the API: the tenant's own (`GET /api/v1/capacity`) and the platform's, for staff.

The tenant is the API key's: its report holds its own measurements only.
The platform report (`GET /api/v1/platform/capacity`) covers every tenant,
the queues and the monitor: it is for operators, so it takes a signed-in
staff user's session (the console's login), never a tenant's API key.
"""

from __future__ import annotations

from typing import Any, cast

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from observability.capacity import DEFAULT_WINDOW, WINDOWS, platform_capacity, tenants_capacity
from tenants.models import Tenant
from tenants.selectors import ResolvedKey


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
        user = request.user
        return bool(user is not None and user.is_authenticated and (user.is_staff or user.is_superuser))


class PlatformCapacityApi(APIView):
    authentication_classes = [SessionAuthentication]
    permission_classes = [IsPlatformStaff]

    # Not in the published document: that is the tenants' API, every operation of it bearer-authenticated;
    # this one is the operators', behind the console's staff login (docs/observability.md says its shape).
    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        return Response(PlatformCapacityOutput(platform_capacity(window=_window(request))).data)
