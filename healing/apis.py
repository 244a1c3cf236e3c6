"""The failures, RCA and healing-actions API (docs/contract.md §7): lists, an operator's word and decisions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from beastflow.openapi import PAGE_PARAMETERS, problems
from beastflow.pagination import paginate_desc
from beastflow.problems import ProblemError
from beastflow.strict_input import StrictInputSerializer
from engines.selectors import source_get
from healing import openapi as docs
from healing import selectors, services
from healing.models import FailureStatus, HealingAction, HealingStatus, RCAResult
from healing.rca.analysis import RCAError, rca_confirm
from healing.schemas import RCACategory
from tenants.models import ApiKey


def list_parameters(statuses: Sequence[str]) -> list[OpenApiParameter]:
    """A list's filters and page, for the schema: `status` is one of the rows' own statuses."""
    return [
        OpenApiParameter("source", int, description="Only this source's rows."),
        OpenApiParameter("status", {"type": "string", "enum": list(statuses)}, description="Only rows in this status."),
        *PAGE_PARAMETERS,
    ]


def source_filter(request: Request) -> int | None:
    raw = request.query_params.get("source")
    if not raw:
        return None
    source = source_get(raw)
    if source is None:  # another tenant's source, as everywhere: not found
        raise ProblemError(404, "No such source.")
    return source.pk


def status_filter(request: Request, allowed: Any) -> str | None:
    status = request.query_params.get("status") or None
    if status is not None and status not in allowed:
        raise ProblemError(
            400,
            f"status must be one of {', '.join(allowed)}",
            errors=[{"field": "status", "message": "unknown status"}],
        )
    return status


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
        operation_id="healing_actions_list",
        parameters=list_parameters(HealingStatus.values),
        responses={200: docs.HealingActionPage},
        summary="Healing actions, newest first",
    )
    def get(self, request: Request) -> Response:
        source_id = source_filter(request)
        status = status_filter(request, HealingStatus.values)
        page = paginate_desc(
            selectors.healing_actions(source_id=source_id, status=status),
            request.query_params,
            lambda rows: [selectors.healing_action_render(row) for row in rows],
        )
        return Response(page.as_dict())


class HealingActionDetailApi(APIView):
    @extend_schema(
        operation_id="healing_actions_get",
        responses={200: docs.HealingActionDetailOut},
        summary="One healing action, with its audit trail (events)",
    )
    def get(self, request: Request, action_id: str) -> Response:
        return Response(selectors.healing_action_render(action_or_404(action_id), events=True))


class HealingActionApproveApi(APIView):
    @extend_schema_serializer(component_name="HealingApproveInput")
    class InputSerializer(StrictInputSerializer):
        reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")

    @extend_schema(
        operation_id="healing_actions_approve",
        request=InputSerializer,
        responses={200: docs.HealingActionDecidedOut, **problems(409)},
        summary="Approve an action awaiting approval; it starts now",
        examples=[OpenApiExample("approve", request_only=True, value={"reason": "checked the upstream's status page"})],
    )
    def post(self, request: Request, action_id: str) -> Response:
        action = action_or_404(action_id)
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            action = services.healing_action_approve(action=action, actor=actor(request), reason=body.data["reason"])
        except services.HealingActionError as exc:
            raise ProblemError(exc.status, exc.detail) from exc
        rendered = selectors.healing_action_render(action, events=True)
        secret = getattr(action, "secret_once", None)
        if secret:  # a rotated webhook secret: this answer is the only place it is shown
            rendered["webhook_secret"] = secret
        return Response(rendered)


class HealingActionRejectApi(APIView):
    @extend_schema_serializer(component_name="HealingRejectInput")
    class InputSerializer(StrictInputSerializer):
        reason = serializers.CharField(max_length=2000)  # who rejected is known; why must be said

    @extend_schema(
        operation_id="healing_actions_reject",
        request=InputSerializer,
        responses={200: docs.HealingActionDetailOut, **problems(409)},
        summary="Reject an action awaiting approval; nothing runs",
    )
    def post(self, request: Request, action_id: str) -> Response:
        action = action_or_404(action_id)
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            action = services.healing_action_reject(action=action, actor=actor(request), reason=body.data["reason"])
        except services.HealingActionError as exc:
            raise ProblemError(exc.status, exc.detail) from exc
        return Response(selectors.healing_action_render(action, events=True))


# -- failures ---------------------------------------------------------------------


class FailureListApi(APIView):
    @extend_schema(
        operation_id="failures_list",
        parameters=list_parameters(FailureStatus.values),
        responses={200: docs.FailurePage},
        summary="Failures, newest first",
    )
    def get(self, request: Request) -> Response:
        source_id = source_filter(request)
        status = status_filter(request, FailureStatus.values)
        page = paginate_desc(
            selectors.failures(source_id=source_id, status=status),
            request.query_params,
            lambda rows: [selectors.failure_render(row) for row in rows],
        )
        return Response(page.as_dict())


class FailureDetailApi(APIView):
    @extend_schema(operation_id="failures_get", responses={200: docs.FailureOut}, summary="One failure")
    def get(self, request: Request, failure_id: str) -> Response:
        failure = selectors.failure_get(failure_id)
        if failure is None:
            raise ProblemError(404, "No such failure.")
        return Response(selectors.failure_render(failure))


# -- RCA --------------------------------------------------------------------------


def rca_or_404(rca_id: Any) -> RCAResult:
    rca = selectors.rca_get(rca_id)
    if rca is None:
        raise ProblemError(404, "No such RCA result.")
    return rca


class RCAListApi(APIView):
    @extend_schema(
        operation_id="rca_list",
        parameters=list_parameters(selectors.RCA_STATUSES),
        responses={200: docs.RCAPage},
        summary="RCA results, newest first (status: confirmed or unconfirmed)",
    )
    def get(self, request: Request) -> Response:
        source_id = source_filter(request)
        status = status_filter(request, selectors.RCA_STATUSES)
        page = paginate_desc(
            selectors.rca_results(source_id=source_id, status=status),
            request.query_params,
            lambda rows: [selectors.rca_render(row) for row in rows],
        )
        return Response(page.as_dict())


class RCADetailApi(APIView):
    @extend_schema(
        operation_id="rca_get", responses={200: docs.RCADetailOut}, summary="One RCA result, with its timeline"
    )
    def get(self, request: Request, rca_id: str) -> Response:
        rca = rca_or_404(rca_id)
        return Response({**selectors.rca_render(rca), "timeline": selectors.rca_timeline(rca)})


class RCAConfirmApi(APIView):
    @extend_schema_serializer(component_name="RCAConfirmInput")
    class InputSerializer(StrictInputSerializer):
        category = serializers.ChoiceField(
            choices=[c.value for c in RCACategory], required=False, help_text="Omit to confirm; another to correct."
        )
        note = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")

    @extend_schema(
        operation_id="rca_confirm",
        request=InputSerializer,
        responses={200: docs.RCAOut},
        summary="Confirm an RCA result, or correct its category",
    )
    def post(self, request: Request, rca_id: str) -> Response:
        rca = rca_or_404(rca_id)
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            rca = rca_confirm(
                rca=rca, actor=actor(request), category=body.validated_data.get("category"), note=body.data["note"]
            )
        except RCAError as exc:
            errors = [{"field": exc.field, "message": exc.detail}] if exc.field else []
            raise ProblemError(exc.status, exc.detail, errors=errors) from exc
        return Response(selectors.rca_render(rca))


class RCALearnerApi(APIView):
    @extend_schema(
        operation_id="rca_learner",
        responses={200: docs.LearnerReportOut},
        summary="The classifier trained on confirmed RCA results: its held-out accuracy",
    )
    def get(self, request: Request) -> Response:
        return Response(selectors.learner_report())


class HealingStrategyListApi(APIView):
    @extend_schema(
        operation_id="healing_strategies_list",
        responses={200: docs.StrategyPage},
        summary="The healing strategies: categories, risk, verification, observed success rates",
    )
    def get(self, request: Request) -> Response:
        results = selectors.strategy_stats()
        return Response({"results": results, "next_cursor": None})
