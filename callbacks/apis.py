"""The subscriptions API (docs/contract.md §5): one view per operation, logic in services."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from beastflow.netguard import literal_problem
from beastflow.openapi import PAGE_PARAMETERS, problems
from beastflow.pagination import paginate_desc
from beastflow.problems import ProblemError, flatten_errors
from beastflow.strict_input import StrictInputSerializer
from callbacks import openapi as docs
from callbacks import selectors, services
from callbacks.models import Delivery, Subscription
from callbacks.signing import Scheme

MAX_SOURCES = 500


def _http_url(value: str) -> str:
    value = value.strip()
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        raise serializers.ValidationError("not a URL")
    if parts.scheme not in ("http", "https"):
        raise serializers.ValidationError("must be an http or https URL")
    if not parts.hostname or any(char.isspace() or char == "\x00" for char in value):
        raise serializers.ValidationError("must be an absolute URL with a host")
    problem = literal_problem(value)  # names are checked when resolved, at delivery
    if problem:
        raise serializers.ValidationError(problem)
    return value


class SubscriptionCreateInput(StrictInputSerializer):
    url = serializers.CharField(max_length=2000, help_text="http(s) endpoint that receives POSTed changes.")
    sources = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        allow_null=True,
        allow_empty=False,
        max_length=MAX_SOURCES,
        required=False,
        help_text="Source ids to deliver; absent or null for every source.",
    )
    from_seq = serializers.IntegerField(
        min_value=0,
        required=False,
        allow_null=True,
        help_text="First seq to deliver; absent for changes committed from now on.",
    )
    signature = serializers.ChoiceField(
        choices=[scheme.value for scheme in Scheme],
        default=Scheme.BEASTFLOW.value,
        help_text=(
            "How callbacks are signed: `beastflow` (X-BeastFlow-Signature, the default) or `standard-webhooks` "
            "(webhook-id / webhook-timestamp / webhook-signature, verified with the Standard Webhooks libraries; "
            "the secret is then whsec_ + base64)."
        ),
    )

    def validate_url(self, value: str) -> str:
        return _http_url(value)


class ReplayInput(StrictInputSerializer):
    from_seq = serializers.IntegerField(min_value=0, help_text="First seq to deliver again.")


def _parse(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:  # type: ignore[type-arg]
    if not isinstance(data, dict):
        raise ProblemError(
            400, "The body must be a JSON object.", errors=[{"field": "body", "message": "not an object"}]
        )
    serializer = serializer_class(data=data)
    errors = [] if serializer.is_valid() else flatten_errors(serializer.errors)
    # A misspelt field (say "source") must not silently widen the subscription.
    errors += [{"field": name, "message": "unknown field"} for name in sorted(set(data) - set(serializer.fields))]
    if errors:
        raise ProblemError(422, "The request is invalid; see errors.", errors=errors)
    return dict(serializer.validated_data)


def _problem(exc: services.SubscriptionError) -> ProblemError:
    return ProblemError(exc.status, exc.detail, errors=exc.errors)


def subscription_or_404(subscription_id: Any) -> Subscription:
    subscription = selectors.subscription_get(subscription_id)
    if subscription is None:
        # Another tenant's subscription is simply not in this schema: same 404.
        raise ProblemError(404, "No such subscription.")
    return subscription


class SubscriptionListCreateApi(APIView):
    @extend_schema(
        operation_id="subscriptions_list",
        parameters=PAGE_PARAMETERS,
        responses={200: docs.SubscriptionPage},
        summary="List subscriptions, newest first",
    )
    def get(self, request: Request) -> Response:
        page = paginate_desc(Subscription.objects.all(), request.query_params, selectors.subscriptions_render)
        return Response(page.as_dict())

    @extend_schema(
        operation_id="subscriptions_create",
        request=SubscriptionCreateInput,
        responses={201: docs.SubscriptionCreatedOut, **problems(410, 422)},
        summary="Subscribe an endpoint; the secret is shown once",
        examples=[
            OpenApiExample(
                "every source, from now on",
                request_only=True,
                value={"url": "https://app.example.com/hooks/beastflow"},
            ),
            OpenApiExample(
                "two sources from seq 1, Standard Webhooks signatures",
                request_only=True,
                value={
                    "url": "https://app.example.com/hooks/beastflow",
                    "sources": [1, 2],
                    "from_seq": 1,
                    "signature": "standard-webhooks",
                },
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        spec = _parse(SubscriptionCreateInput, request.data)
        try:
            subscription, secret = services.subscription_create(
                url=spec["url"], sources=spec.get("sources"), from_seq=spec.get("from_seq"), signature=spec["signature"]
            )
        except services.SubscriptionError as exc:
            raise _problem(exc) from exc
        body = selectors.subscription_render(subscription)
        body["secret"] = secret
        return Response(body, status=201)


class SubscriptionDetailApi(APIView):
    @extend_schema(operation_id="subscriptions_get", responses={200: docs.SubscriptionOut}, summary="One subscription")
    def get(self, request: Request, subscription_id: str) -> Response:
        return Response(selectors.subscription_render(subscription_or_404(subscription_id)))

    @extend_schema(
        operation_id="subscriptions_delete", responses={204: None}, summary="Delete a subscription and its delivery log"
    )
    def delete(self, request: Request, subscription_id: str) -> Response:
        services.subscription_delete(subscription=subscription_or_404(subscription_id))
        return Response(status=204)


class SubscriptionDeliveriesApi(APIView):
    @extend_schema(
        operation_id="deliveries_list",
        parameters=PAGE_PARAMETERS,
        responses={200: docs.DeliveryPage},
        summary="Delivery attempts of a subscription, newest first",
    )
    def get(self, request: Request, subscription_id: str) -> Response:
        subscription = subscription_or_404(subscription_id)
        page = paginate_desc(
            Delivery.objects.filter(subscription=subscription), request.query_params, selectors.deliveries_render
        )
        return Response(page.as_dict())


class SubscriptionReplayApi(APIView):
    @extend_schema(
        operation_id="subscriptions_replay",
        request=ReplayInput,
        responses={202: docs.SubscriptionOut, **problems(410, 422)},
        summary="Deliver again from a seq (202: deliveries follow)",
    )
    def post(self, request: Request, subscription_id: str) -> Response:
        subscription = subscription_or_404(subscription_id)
        spec = _parse(ReplayInput, request.data)
        try:
            subscription = services.subscription_replay(subscription=subscription, from_seq=spec["from_seq"])
        except services.SubscriptionError as exc:
            raise _problem(exc) from exc
        return Response(selectors.subscription_render(subscription), status=202)


class SubscriptionEnableApi(APIView):
    @extend_schema(
        operation_id="subscriptions_enable",
        request=None,
        responses={200: docs.SubscriptionOut},
        summary="Enable a (disabled) subscription: retries start afresh",
    )
    def post(self, request: Request, subscription_id: str) -> Response:
        subscription = services.subscription_enable(subscription=subscription_or_404(subscription_id))
        return Response(selectors.subscription_render(subscription))
