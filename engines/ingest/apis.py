"""The push mapping preview API (docs/push.md): one view, logic in engines/ingest/preview.py."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from beastflow.openapi import problems
from beastflow.problems import ProblemError, flatten_errors
from beastflow.strict_input import StrictInputSerializer
from engines import selectors
from engines.ingest.preview import PreviewError, mapping_preview

MAX_HEADERS = 200


# Built with inline_serializer: their fields `data` and `errors` would shadow a Serializer's own attributes.
PREVIEW_EVENT = inline_serializer(
    name="PreviewEvent",
    fields={
        "id": serializers.CharField(),
        "type": serializers.ChoiceField(choices=["upsert", "delete"]),
        "key": serializers.CharField(),
        "version": serializers.IntegerField(),
        "data": serializers.JSONField(allow_null=True),
        "occurred_at": serializers.DateTimeField(allow_null=True),
        "hash": serializers.CharField(allow_null=True, help_text="The record hash of data (null for a delete)."),
    },
)
MAPPING_PREVIEW_OUTPUT = inline_serializer(
    name="MappingPreviewOutput",
    fields={
        "events": serializers.ListField(child=PREVIEW_EVENT, help_text="The events ingest would commit, in order."),
        "ignored": serializers.BooleanField(
            help_text="The mapping's filter left the request out (ingest answers 2xx)."
        ),
        "errors": serializers.ListField(
            child=serializers.DictField(),
            help_text="Why ingest would refuse the request (422), each with its mapping field and item index.",
        ),
    },
)


class MappingPreviewInputSerializer(StrictInputSerializer):
    headers = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=8_192),
        required=False,
        default=dict,
        help_text="The request's headers (names in any case; the mapping sees them lower-cased).",
    )
    body = serializers.JSONField(help_text="The request's body, as JSON.")
    mapping = serializers.JSONField(
        required=False,
        help_text="A push mapping to try instead of the source's own (filter, items, id, key, version, ...).",
    )

    def validate_headers(self, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_HEADERS:
            raise serializers.ValidationError(f"at most {MAX_HEADERS} headers")
        return value

    def validate_mapping(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be an object")
        return value


class MappingPreviewApi(APIView):
    @extend_schema(
        request=MappingPreviewInputSerializer,
        operation_id="sources_mapping_preview",
        responses={200: MAPPING_PREVIEW_OUTPUT, **problems(422)},
        summary="What the source's push mapping makes of a sample request; stores nothing",
        examples=[
            OpenApiExample(
                "a GitHub issues delivery",
                request_only=True,
                value={
                    "headers": {
                        "X-GitHub-Event": "issues",
                        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
                    },
                    "body": {"action": "edited", "issue": {"id": 444500041, "updated_at": "2019-05-15T15:20:18Z"}},
                },
            )
        ],
    )
    def post(self, request: Request, source_id: str) -> Response:
        source = selectors.source_get(source_id)
        if source is None:
            raise ProblemError(404, "No such source.")
        if not isinstance(request.data, dict):
            raise ProblemError(
                400, "The body must be a JSON object.", errors=[{"field": "body", "message": "not an object"}]
            )
        given = MappingPreviewInputSerializer(data=request.data)
        if not given.is_valid():
            raise ProblemError(422, "The request is invalid; see errors.", errors=flatten_errors(given.errors))
        try:
            preview = mapping_preview(
                source=source,
                headers=given.validated_data["headers"],
                body=given.validated_data["body"],
                mapping=given.validated_data.get("mapping"),
            )
        except PreviewError as exc:
            raise ProblemError(exc.status, exc.detail, errors=exc.errors) from exc
        return Response(preview)
