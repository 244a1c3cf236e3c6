"""What the OpenAPI schema (/api/schema/) says about sources, beyond what the views declare.

The sources API validates with engines.schemas, where `config` is a free
object checked against the connector's own model afterwards: generated as
is, the schema would show neither the connectors' configs (the `rest`
connector's listing and record mapping) nor that a preset fills
`connector`. And the views render plain dicts, so their responses would
have no schema. Two drf-spectacular extensions fill that in, from
documentation models kept beside the real ones:

- the request body component `DataSourceConfig` is drawn from
  `SourceDefinition` (config = one of the connector configs, connector
  optional with a preset);
- the sources views get response schemas (`SourceOut`, `SourceCreatedOut`,
  `SourcePageOut`); should engines/apis.py declare its own one day, drop these.

Imported by engines/urls.py, which registers the extensions.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiViewExtension
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import extend_schema, extend_schema_view
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import model_json_schema
from rest_framework.views import APIView

from engines.schemas import (
    Connector,
    HealthConfig,
    HttpConnectorConfig,
    HysteresisConfig,
    PollConfig,
    PushConfig,
    PushMapping,
    PushScheme,
    ReconcileConfig,
    RestConnectorConfig,
    SimulatorConnectorConfig,
)

ConfigUnion = Annotated[
    RestConnectorConfig | HttpConnectorConfig | SimulatorConnectorConfig | dict[str, Any],
    Field(
        description=(
            "The connector's config: RestConnectorConfig for `rest` (an upstream's own list API), "
            "HttpConnectorConfig for `http` (BeastFlow's change feed), SimulatorConnectorConfig for `simulator`. "
            "With a preset, only what its config_schema asks (GET /api/v1/presets): the preset fills the rest."
        )
    ),
]


class SourceDefinition(BaseModel):
    """A source definition as POST /api/v1/sources takes it (validated by engines.schemas.validate_source).

    With `preset`, the preset's fields are merged under the body (see
    docs/presets.md): `connector` and most of `config` and `push` may then
    be left out, and anything given overrides the preset.
    """

    model_config = ConfigDict(extra="forbid", title="DataSourceConfig")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    preset: str | None = Field(default=None, description="A preset's name (GET /api/v1/presets); kept on the source.")
    connector: Connector | None = Field(default=None, description="Required unless a preset gives it.")
    config: ConfigUnion
    push: PushConfig = Field(
        default_factory=PushConfig,
        description="How pushes are verified (scheme, write-only secret, replay window) and read (mapping).",
    )
    hysteresis: HysteresisConfig = Field(default_factory=HysteresisConfig)
    poll: PollConfig = Field(default_factory=PollConfig)
    reconcile: ReconcileConfig = Field(default_factory=ReconcileConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    data_schema: dict[str, Any] | None = Field(
        default=None, description="Optional JSON Schema that every upsert's `data` must match."
    )


class PushOut(BaseModel):
    """`push` as a source shows it: never the secret, only whether one is set."""

    scheme: PushScheme
    tolerance_s: float | None = None
    mapping: PushMapping | None = None
    secret_set: bool


class SourceOut(BaseModel):
    id: int
    name: str
    connector: Connector
    config: ConfigUnion
    preset: str | None = Field(description="The preset the source was made from, if any.")
    push: PushOut
    hysteresis: HysteresisConfig
    poll: PollConfig
    reconcile: ReconcileConfig
    health: HealthConfig
    data_schema: dict[str, Any] | None
    mode: Literal["event", "hybrid", "polling"]
    mode_since: str
    paused: bool
    ingest_url: str = Field(description="Where the upstream posts its webhooks (no API key).")
    created_at: str
    updated_at: str


class SourceCreatedOut(SourceOut):
    webhook_secret: str = Field(description="Shown once: signs BeastFlow-scheme pushes.")


class SourcePageOut(BaseModel):
    results: list[SourceOut]
    next_cursor: str | None


class DataSourceConfigSchema(OpenApiSerializerExtension):  # type: ignore[no-untyped-call]
    """The request component DataSourceConfig, drawn from SourceDefinition (ahead of the pydantic contrib)."""

    target_class = "engines.schemas.DataSourceConfig"
    priority = 1

    def get_name(self, auto_schema: Any, direction: Any) -> str:
        return "DataSourceConfig"

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema = model_json_schema(SourceDefinition, ref_template="#/components/schemas/{model}")
        for name, sub_schema in schema.pop("$defs", {}).items():
            component = ResolvedComponent(  # type: ignore[no-untyped-call]
                name=name, type=ResolvedComponent.SCHEMA, object=name, schema=sub_schema
            )
            auto_schema.registry.register_on_missing(component)
        return schema


def _with_responses(view: type[APIView], **methods: dict[int, Any]) -> type[APIView]:
    """A subclass of `view` whose methods document these responses (their summaries and requests stay)."""
    annotations = {method: extend_schema(responses=responses) for method, responses in methods.items()}
    return extend_schema_view(**annotations)(type(view.__name__, (view,), {}))


class SourceListCreateSchema(OpenApiViewExtension):  # type: ignore[no-untyped-call]
    target_class = "engines.apis.SourceListCreateApi"

    def view_replacement(self) -> type[APIView]:
        return _with_responses(self.target, get={200: SourcePageOut}, post={201: SourceCreatedOut})


class SourceDetailSchema(OpenApiViewExtension):  # type: ignore[no-untyped-call]
    target_class = "engines.apis.SourceDetailApi"

    def view_replacement(self) -> type[APIView]:
        return _with_responses(self.target, get={200: SourceOut}, patch={200: SourceOut}, delete={204: None})
