"""The presets API: which ready-made sources exist and what a tenant supplies to use one (see docs/presets.md)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from beastflow.problems import ProblemError
from engines.connectors.presets.registry import preset_get, registry


class PresetOut(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField(help_text="What a source body gives as `preset`.")
    title = serializers.CharField()
    connector = serializers.CharField(help_text="The connector the preset fills (e.g. `rest`).")
    push_scheme = serializers.CharField(help_text="How pushes are verified: github, stripe, shopify, ...")
    config_schema = serializers.JSONField(help_text="JSON Schema of the `config` the tenant must supply.")
    docs = serializers.CharField(help_text="What the preset does and how to set the upstream's webhook up.")


class PresetListOut(serializers.Serializer):  # type: ignore[type-arg]
    results = PresetOut(many=True)
    next_cursor = serializers.CharField(allow_null=True, help_text="Always null: every preset fits one page.")


class PresetDetailOut(PresetOut):
    fills = serializers.JSONField(
        help_text="The source fields the preset fills (connector, config, push, poll, ...), merged under the body."
    )
    example = serializers.JSONField(help_text="A whole POST /api/v1/sources body using the preset.")


class PresetListApi(APIView):
    @extend_schema(operation_id="presets_list", responses=PresetListOut, summary="Presets for real upstreams, by name")
    def get(self, request: Request) -> Response:
        # Few and the same for every tenant: one page, in name order.
        return Response({"results": [preset.summary() for preset in registry().values()], "next_cursor": None})


class PresetDetailApi(APIView):
    @extend_schema(
        operation_id="presets_get",
        responses=PresetDetailOut,
        summary="One preset with the fields it fills and an example body",
    )
    def get(self, request: Request, name: str) -> Response:
        preset = preset_get(name)
        if preset is None:
            raise ProblemError(404, "No such preset.")
        return Response(preset.render())
