"""What the OpenAPI schema (/api/schema/) says about sources, beyond what the views declare.

The sources API validates with engines.schemas, where `config` is a free
object checked against the connector's own model afterwards: generated as
is, the schema would show neither the connectors' configs (the `rest`
connector's listing and record mapping) nor that a preset fills
`connector`. And the views render plain dicts, so their responses would
have no schema. This module fills that in, from documentation models kept
beside the real ones:

- the request body component `DataSourceConfig` is drawn from
  `SourceDefinition` (config = one of the connector configs, connector
  optional with a preset);
- the bodies the engines views answer (they render plain dicts), as pydantic
  models the views name in their `extend_schema(responses=...)`.

Imported by engines/urls.py, which registers the extension.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.plumbing import ResolvedComponent
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import model_json_schema

from beastflow.openapi import example_of, examples_config
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


class SourcePatch:
    """PATCH /api/v1/sources/{source_id}: drawn by SourcePatchSchema from SourceDefinition, nothing required."""


class PushOut(BaseModel):
    """`push` as a source shows it: never the secret, only whether one is set."""

    expected: bool = True
    scheme: PushScheme
    tolerance_s: float | None = None
    mapping: PushMapping | None = None
    secret_set: bool


class SourceOut(BaseModel):
    model_config = examples_config(
        {
            "id": 7,
            "name": "orders",
            "connector": "http",
            "config": {"poll_url": "https://upstream.example/changes"},
            "preset": None,
            "push": {"expected": True, "scheme": "beastflow", "secret_set": False},
            "hysteresis": {"fail_threshold": 3, "recover_threshold": 5, "min_dwell_s": 10},
            "poll": {"min_interval_s": 1, "max_interval_s": 60},
            "reconcile": {"interval_s": 300, "max_change_ratio": 0.1},
            "health": {"silence_tolerance": 3, "min_silence_s": 5, "bad_below": 50},
            "data_schema": None,
            "mode": "event",
            "mode_since": "2026-12-06T19:08:01+00:00",
            "paused": False,
            "ingest_url": "https://beastflow.example/api/v1/sources/7/events",
            "created_at": "2026-12-06T19:08:01+00:00",
            "updated_at": "2026-12-06T19:08:01+00:00",
        }
    )

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
    model_config = examples_config({**example_of(SourceOut), "webhook_secret": "p8Vq3...shown-once...Zk2w"})

    webhook_secret: str = Field(description="Shown once: signs BeastFlow-scheme pushes.")


class SourcePage(BaseModel):
    results: list[SourceOut]
    next_cursor: str | None


Mode = Literal["event", "hybrid", "polling"]


class RecordOut(BaseModel):
    """A live record: the highest version's data."""

    model_config = examples_config(
        {
            "key": "order-42",
            "version": 7,
            "data": {"status": "paid", "total": 12.5},
            "hash": "3f1c9c1e0f6a4b1e9b7d2a5c8e4f6a7b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f",
            "updated_at": "2026-12-06T19:08:01.123456+00:00",
        }
    )

    key: str
    version: int
    data: dict[str, Any] | None
    hash: str = Field(description="The record hash of data (docs/contract.md §5: sha256 of its canonical JSON).")
    updated_at: str


class RecordPage(BaseModel):
    results: list[RecordOut]
    next_cursor: str | None


class ChangeOut(BaseModel):
    """One committed change, in commit order (seq)."""

    model_config = examples_config(
        {
            "seq": 1042,
            "source": 7,
            "event_id": "evt_1001",
            "type": "upsert",
            "key": "order-42",
            "version": 7,
            "data": {"status": "paid"},
            "origin": "push",
            "committed_at": "2026-12-06T19:08:01.123456+00:00",
        }
    )

    seq: int
    source: int
    event_id: str
    type: Literal["upsert", "delete"]
    key: str
    version: int
    data: dict[str, Any] | None
    origin: str = Field(description="How it came: push, poll, reconcile, ...")
    committed_at: str


class ChangeFeedPage(BaseModel):
    """Changes with seq > after, oldest first; ask again with after=next_after."""

    results: list[ChangeOut]
    next_after: int = Field(description="The last seq of this page (after itself when the page is empty).")


class SourceHealthOut(BaseModel):
    mode: Mode
    paused: bool
    health_score: int = Field(description="0..100, the monitor's latest judgement (100 before the first).")
    verdict: str | None
    mode_since: str
    last_event_at: str | None
    last_push_at: str | None
    last_heartbeat_at: str | None
    contiguous_seq: int | None
    highest_seq: int | None
    upstream_seq: int | None
    pending_seqs: int
    expected_interval_s: float | None
    delivery_rate: float | None
    events_total: int
    changes_total: int
    duplicates_total: int
    push_errors_total: int
    next_poll_at: str | None
    polled_missed: int
    polled_missed_at: str | None
    last_audit_at: str | None
    measures: dict[str, Any]


class ModeSwitchOut(BaseModel):
    model_config = examples_config(
        {
            "id": 3,
            "from_mode": "event",
            "to_mode": "polling",
            "transition": "degrade",
            "reason": "3 bad judgements in a row (silence 42 s, expected 5 s)",
            "signals": {"silence_s": 42.0, "delivery_rate": 0.2},
            "at": "2026-12-06T19:10:00+00:00",
            "validated": True,
            "rolled_back": False,
            "actor": None,
        }
    )

    id: int
    from_mode: Mode
    to_mode: Mode
    transition: str
    reason: str
    signals: dict[str, Any]
    at: str
    validated: bool | None = Field(description="Did the switch help? null until judged.")
    rolled_back: bool
    actor: str | None = Field(description="Who switched by hand; null for the monitor.")


class ModeSwitchPage(BaseModel):
    results: list[ModeSwitchOut]
    next_cursor: str | None


class PollRunOut(BaseModel):
    id: int
    trigger: Literal["schedule", "gap_fill", "manual", "audit"]
    status: Literal["succeeded", "failed", "skipped"]
    started_at: str
    finished_at: str | None
    from_seq: int | None
    to_seq: int | None
    pages: int
    events: int
    new_events: int
    changes: int
    caught_up: bool
    missed: int
    details: dict[str, Any]
    http_status: int | None
    error_kind: str | None
    error: str | None
    next_interval_s: float | None


class PollRunPage(BaseModel):
    results: list[PollRunOut]
    next_cursor: str | None


class ReconciliationOut(BaseModel):
    id: int
    status: str
    started_at: str
    finished_at: str | None
    upstream_count: int
    local_count: int
    missing: int
    changed: int
    deleted: int
    corrections: int
    trigger: str
    mode: str | None
    in_flight: int
    conflicts: int
    digest_root: str | None
    local_digest_root: str | None
    buckets_differing: int | None
    pages_fetched: int
    records_fetched: int
    duration_ms: float | None
    max_change_ratio: float | None
    error_kind: str | None
    error: str | None
    samples: dict[str, Any]


class ReconciliationPage(BaseModel):
    results: list[ReconciliationOut]
    next_cursor: str | None


class PollQueuedOut(BaseModel):
    source: int
    queued: bool


class ReconcileQueuedOut(BaseModel):
    run: int = Field(description="The run: GET /api/v1/sources/{source_id}/reconciliations lists it.")
    status: str
    queued: bool = Field(description="False when a run was already under way: this is that run.")


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


class SourcePatchSchema(OpenApiSerializerExtension):  # type: ignore[no-untyped-call]
    """The request component SourcePatch: SourceDefinition's fields, none required, and `paused`."""

    target_class = "engines.openapi.SourcePatch"

    def get_name(self, auto_schema: Any, direction: Any) -> str:
        return "SourcePatch"

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema = DataSourceConfigSchema.map_serializer(self, auto_schema, direction)  # type: ignore[arg-type]
        schema.pop("required", None)
        schema["title"] = "SourcePatch"
        schema["description"] = (
            "The top-level fields given replace the source's, and the result is validated whole "
            "(`push.secret_set` of a GET body is ignored); other fields, read-only ones included, answer 422."
        )
        schema["properties"]["paused"] = {
            "type": "boolean",
            "description": "Pause (true) or resume (false) polling and judging.",
        }
        return schema
