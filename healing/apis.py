"""The healing-actions API (CONTRACT §7): list, and an operator's decision."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from beastflow.pagination import paginate_desc
from beastflow.problems import ProblemError
from engines.selectors import source_get
from healing import selectors, services
from healing.models import HealingAction, HealingStatus
from tenants.models import ApiKey


def action_or_404(action_id: Any) -> HealingAction:
    action = selectors.healing_action_get(action_id)
    if action is None:  # another tenant's action is not in this schema: same 404
        raise ProblemError(404, "No such healing action.")
    return action


def actor(request: Request) -> str:
    """Who decided: the API key (its label when it has one); the key id is never secret."""
    key_id = getattr(request.auth, "key_id", None)
    label = ApiKey.objects.filter(pk=key_id).values_list("label", flat=True).first() if key_id else None
    return f"api_key:{key_id}" + (f" ({label})" if label else "")


class HealingActionListApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("source", int, description="Only this source's actions."),
            OpenApiParameter("status", str, description="Only actions in this status."),
            OpenApiParameter("limit", int, description="Page size, 1..500 (default 50)."),
            OpenApiParameter("cursor", str, description="next_cursor of the previous page."),
        ],
        summary="Healing actions, newest first",
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        source_id = None
        if params.get("source"):
            source = source_get(params["source"])
            if source is None:  # another tenant's source, as everywhere: not found
                raise ProblemError(404, "No such source.")
            source_id = source.pk
        status = params.get("status") or None
        if status is not None and status not in HealingStatus.values:
            raise ProblemError(
                400,
                f"status must be one of {', '.join(HealingStatus.values)}",
                errors=[{"field": "status", "message": "unknown status"}],
            )
        page = paginate_desc(
            selectors.healing_actions(source_id=source_id, status=status),
            params,
            lambda rows: [selectors.healing_action_render(row) for row in rows],
        )
        return Response(page.as_dict())


class HealingActionDetailApi(APIView):
    @extend_schema(summary="One healing action")
    def get(self, request: Request, action_id: str) -> Response:
        return Response(selectors.healing_action_render(action_or_404(action_id)))


class HealingActionApproveApi(APIView):
    class InputSerializer(serializers.Serializer[Any]):
        reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")

    @extend_schema(request=InputSerializer, summary="Approve an action awaiting approval; it starts now")
    def post(self, request: Request, action_id: str) -> Response:
        action = action_or_404(action_id)
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            action = services.healing_action_approve(action=action, actor=actor(request), reason=body.data["reason"])
        except services.HealingActionError as exc:
            raise ProblemError(exc.status, exc.detail) from exc
        return Response(selectors.healing_action_render(action))


class HealingActionRejectApi(APIView):
    class InputSerializer(serializers.Serializer[Any]):
        reason = serializers.CharField(max_length=2000)  # who rejected is known; why must be said

    @extend_schema(request=InputSerializer, summary="Reject an action awaiting approval; nothing runs")
    def post(self, request: Request, action_id: str) -> Response:
        action = action_or_404(action_id)
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            action = services.healing_action_reject(action=action, actor=actor(request), reason=body.data["reason"])
        except services.HealingActionError as exc:
            raise ProblemError(exc.status, exc.detail) from exc
        return Response(selectors.healing_action_render(action))
