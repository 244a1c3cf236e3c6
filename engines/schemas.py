"""Typed, validated shapes of a data source's configuration (docs/contract.md §3).

Every field has a documented default, so `{"name", "connector", config with
the connector's required fields}` is a whole source. Validation errors carry
the field path, which the API turns into problem+json `errors[]`.
"""

from __future__ import annotations

import base64
import binascii
import json
import string
from enum import StrEnum
from typing import Annotated, Any, Literal

import jmespath
import jsonschema
from jmespath.exceptions import JMESPathError
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from beastflow.netguard import header_problems, literal_problem
from engines.ingest.validation import content_problem
from engines.modes import Mode

DataFlowMode = Mode


class Connector(StrEnum):
    HTTP = "http"
    SIMULATOR = "simulator"
    REST = "rest"  # an upstream's own list API (docs/contract.md §8.3)


def check_jmespath(value: str | None) -> str | None:
    """A JMESPath expression that compiles (or None). Compiled again, and cached, where it is used."""
    if value is None:
        return None
    if not value.strip():
        raise ValueError("an empty expression")
    try:
        jmespath.compile(value)
    except JMESPathError as exc:
        raise ValueError(f"not a JMESPath expression: {exc}") from exc
    return value


Expression = Annotated[str, Field(min_length=1, max_length=2_000)]


def check_upstream_url(value: Any) -> Any:
    """A URL whose host is literally a forbidden address (loopback, private, ...) is refused here.

    Names are judged when they are resolved, at request time (see docs/security.md).
    """
    if value is not None:
        problem = literal_problem(str(value))
        if problem:
            raise ValueError(problem)
    return value


def check_headers(value: dict[str, str]) -> dict[str, str]:
    """No Host, hop-by-hop or framing header, no CR/LF/NUL: the connection is ours to shape."""
    problems = header_problems(value)
    if problems:
        raise ValueError("; ".join(problems))
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpConnectorConfig(_Strict):
    """An upstream speaking docs/contract.md §6 over HTTP."""

    poll_url: AnyHttpUrl
    snapshot_url: AnyHttpUrl | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    expected_interval_s: float = Field(default=5.0, gt=0, le=86_400)
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    page_limit: int = Field(default=500, ge=1, le=5_000)
    digests: bool = Field(default=True, description="Use ?digest=1 bucket digests when reconciling.")

    _check_urls = field_validator("poll_url", "snapshot_url")(check_upstream_url)
    _check_headers = field_validator("headers")(check_headers)


class SimulatorConnectorConfig(HttpConnectorConfig):
    """The built-in simulator: an http upstream run by BeastFlow itself."""

    scenario: str | None = None


class RestPagination(_Strict):
    """How the next page of a listing is found (docs/contract.md §8.3).

    `link`: the `Link: <url>; rel="next"` header; `cursor`: `next` (JMESPath
    over the response body) gives the value sent as `param` on the next
    request, none/null/false = last page; `page`: `param` counts pages from
    `start`, an empty page is the last; `none`: one page.
    """

    style: Literal["link", "cursor", "page", "none"] = "link"
    next: Expression | None = None
    param: str | None = None
    start: int = Field(default=1, ge=0)

    _check_next = field_validator("next")(check_jmespath)

    @model_validator(mode="after")
    def _needs(self) -> RestPagination:
        if self.style == "cursor" and (not self.next or not self.param):
            raise ValueError("cursor pagination needs `next` (JMESPath) and `param`")
        if self.style == "page" and not self.param:
            raise ValueError("page pagination needs `param`")
        return self


class RestListing(_Strict):
    """One listing of an upstream's records and how each record maps to a record of ours.

    `records`: JMESPath to the list in a response body (None: the body is the
    list). `key`, `version`, `op`, `data`: JMESPath on one record; `version`
    gives an integer or an RFC 3339 timestamp (taken as microseconds since
    the epoch); `op` gives "upsert" or "delete" (default upsert); `data`
    defaults to the record itself.
    """

    path: str = Field(min_length=1, max_length=2_000)
    params: dict[str, str] = Field(default_factory=dict)
    records: Expression | None = None
    key: Expression
    version: Expression
    op: Expression | None = None
    data: Expression | None = None

    _check_expressions = field_validator("records", "key", "version", "op", "data")(check_jmespath)


class RestConnectorConfig(_Strict):
    """An upstream's own list API, polled from a watermark (docs/contract.md §8.3).

    Extra string fields (a preset's `owner`, `repo`) fill `{name}`
    placeholders in paths and params.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    base_url: AnyHttpUrl
    list_path: str = Field(min_length=1, max_length=2_000)
    headers: dict[str, str] = Field(default_factory=dict)
    params: dict[str, str] = Field(default_factory=dict)
    records: Expression | None = None
    pagination: RestPagination = Field(default_factory=RestPagination)
    since_param: str | None = None
    since_field: Expression | None = None
    since_format: Literal["rfc3339", "unix"] = "rfc3339"
    overlap_s: float = Field(default=5.0, ge=0, le=86_400, description="Asked again behind the watermark.")
    key: Expression
    version: Expression
    op: Expression | None = None
    data: Expression | None = None
    snapshot: RestListing | None = Field(
        default=None, description="Another listing for reconciliation (default: list_path without since_param)."
    )
    expected_interval_s: float = Field(default=60.0, gt=0, le=86_400)
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    digests: Literal[False] = False

    _check_expressions = field_validator("records", "since_field", "key", "version", "op", "data")(check_jmespath)
    _check_url = field_validator("base_url")(check_upstream_url)
    _check_headers = field_validator("headers")(check_headers)

    @model_validator(mode="after")
    def _template_vars(self) -> RestConnectorConfig:
        extras = self.model_extra or {}
        for name, value in extras.items():
            if not isinstance(value, str):
                raise ValueError(f"{name}: extra config fields are template values and must be strings")
        templates = [self.list_path, *self.params.values()]
        if self.snapshot is not None:
            templates += [self.snapshot.path, *self.snapshot.params.values()]
        for template in templates:
            for _, field_name, _, _ in string.Formatter().parse(template):
                if field_name is not None and field_name not in extras:
                    raise ValueError(f"{{{field_name}}} in {template!r} needs a config field {field_name!r}")
        if (self.since_param is None) != (self.since_field is None):
            raise ValueError("since_param and since_field go together")
        return self

    def template_values(self) -> dict[str, str]:
        return {name: str(value) for name, value in (self.model_extra or {}).items()}


ConnectorConfig = HttpConnectorConfig | RestConnectorConfig

CONNECTOR_CONFIGS: dict[Connector, type[HttpConnectorConfig] | type[RestConnectorConfig]] = {
    Connector.HTTP: HttpConnectorConfig,
    Connector.SIMULATOR: SimulatorConnectorConfig,
    Connector.REST: RestConnectorConfig,
}


class PushScheme(StrEnum):
    """How a source's pushes are signed (docs/contract.md §8.2)."""

    BEASTFLOW = "beastflow"
    STANDARD_WEBHOOKS = "standard-webhooks"
    STRIPE = "stripe"
    GITHUB = "github"
    SHOPIFY = "shopify"


class PushMapping(_Strict):
    """JMESPath over {"headers", "body", "item"} turning an upstream's request into events (docs/contract.md §8.2)."""

    filter: Expression | None = None
    items: Expression | None = None
    id: Expression
    key: Expression
    version: Expression
    op: Expression | None = None
    data: Expression | None = None
    occurred_at: Expression | None = None

    _check_expressions = field_validator("filter", "items", "id", "key", "version", "op", "data", "occurred_at")(
        check_jmespath
    )


class PushConfig(_Strict):
    """`push`: the scheme that verifies a source's webhooks and the mapping that reads them.

    `secret` is write-only: accepted here, stored encrypted on the source,
    never rendered. A native scheme needs a mapping; `beastflow` takes
    docs/contract.md §4 bodies and has none.
    """

    expected: bool = Field(
        default=True,
        description=(
            "False: the upstream sends no webhooks (a plain REST API, a feed): the source runs in polling from the "
            "start and stays there, its silence is never judged or reported as a failure; pushes are still accepted."
        ),
    )
    scheme: PushScheme = PushScheme.BEASTFLOW
    secret: Annotated[str, Field(min_length=1, max_length=1_000)] | None = None
    tolerance_s: float = Field(default=300.0, ge=1, le=86_400, description="Replay window of timestamped schemes.")
    require_timestamp: bool = Field(
        default=False,
        description="Scheme beastflow: refuse the untimed `sha256=` signature, accept only `t=<unix>,v1=<hex>`.",
    )
    mapping: PushMapping | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PushConfig:
        if self.scheme is PushScheme.BEASTFLOW:
            if self.mapping is not None:
                raise ValueError("scheme beastflow takes docs/contract.md §4 events and has no mapping")
        elif self.mapping is None:
            raise ValueError(f"scheme {self.scheme.value} needs a mapping")
        if self.secret is not None and self.scheme is PushScheme.STANDARD_WEBHOOKS:
            raw = self.secret.removeprefix("whsec_")
            try:
                base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError("a standard-webhooks secret is 'whsec_' followed by base64") from exc
        return self

    def stored(self) -> dict[str, Any]:
        """What the source row keeps in `push` (the secret goes to its own encrypted column)."""
        return self.model_dump(mode="json", exclude={"secret"})


class HysteresisConfig(_Strict):
    fail_threshold: int = Field(default=3, ge=1, le=100, description="Bad verdicts in a row that leave event mode.")
    recover_threshold: int = Field(default=5, ge=1, le=1_000, description="Good verdicts in a row that leave polling.")
    min_dwell_s: float = Field(default=10.0, ge=0, le=86_400, description="Least time spent in polling.")
    max_dwell_s: float = Field(default=600.0, ge=0, le=86_400, description="Cap of the dwell after flapping.")
    flap_switches: int = Field(default=4, ge=2, le=100, description="Switches within flap_window_s that mean flapping.")
    flap_window_s: float = Field(default=300.0, gt=0, le=86_400)
    validation_window_s: float = Field(default=30.0, ge=0, le=86_400)

    @model_validator(mode="after")
    def _dwell_order(self) -> HysteresisConfig:
        if self.max_dwell_s < self.min_dwell_s:
            raise ValueError("max_dwell_s must be >= min_dwell_s")
        return self


class HealthConfig(_Strict):
    """How the StreamMonitor judges the push stream (engines/health.HealthPolicy)."""

    silence_tolerance: float = Field(
        default=3.0, gt=0, le=100, description="Silence allowed, in multiples of the stream's rhythm."
    )
    min_silence_s: float = Field(default=5.0, ge=0, le=86_400, description="Silence never judged before this.")
    bad_below: int = Field(default=50, ge=1, le=100, description="Scores below this are a bad verdict.")


class PollConfig(_Strict):
    min_interval_s: float = Field(default=1.0, gt=0, le=86_400)
    max_interval_s: float = Field(default=60.0, gt=0, le=86_400)
    page_budget: int = Field(default=20, ge=1, le=1_000, description="Pages fetched per poll at most.")
    audit_interval_s: float = Field(
        default=60.0,
        ge=0,
        le=86_400,
        description="In event mode, a source whose upstream gives no seq is polled at least this often (0: never).",
    )

    @model_validator(mode="after")
    def _interval_order(self) -> PollConfig:
        if self.max_interval_s < self.min_interval_s:
            raise ValueError("max_interval_s must be >= min_interval_s")
        return self


class ReconcileConfig(_Strict):
    interval_s: float = Field(default=300.0, ge=0, le=7 * 86_400, description="0 turns scheduled runs off.")
    max_change_ratio: float = Field(
        default=0.10, ge=0, le=1, description="Share of records a run may change or delete without approval."
    )


DATA_SCHEMA_MAX_BYTES = 64 * 1024
DATA_SCHEMA_MAX_DEPTH = 32
DEFINITION_MAX_DEPTH = 64  # a whole source definition, data_schema included


class DataSourceConfig(_Strict):
    """A whole source definition as the API accepts it.

    `config` is checked against the connector's own model by
    `validate_source` (so that its errors carry their `config.` path).
    """

    name: Annotated[str, Field(min_length=1, max_length=200)]
    connector: Connector
    config: dict[str, Any]
    preset: str | None = Field(default=None, description="The preset this source was made from (GET /presets).")
    push: PushConfig = Field(default_factory=PushConfig)
    hysteresis: HysteresisConfig = Field(default_factory=HysteresisConfig)
    poll: PollConfig = Field(default_factory=PollConfig)
    reconcile: ReconcileConfig = Field(default_factory=ReconcileConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    data_schema: dict[str, Any] | None = Field(
        default=None,
        description=(
            f"Optional JSON Schema (draft 2020-12) that every upsert's `data` must match; at most "
            f"{DATA_SCHEMA_MAX_BYTES} bytes as JSON, nested at most {DATA_SCHEMA_MAX_DEPTH} levels."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, body: Any) -> Any:
        """No NUL character anywhere (PostgreSQL refuses it), no absurd nesting: 422, never a 500."""
        found = content_problem(body, max_depth=DEFINITION_MAX_DEPTH)
        if found is not None:
            path, message = found
            raise ValueError(f"{path or 'body'}: {message}")
        return body

    @field_validator("data_schema")
    @classmethod
    def _a_json_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        if len(json.dumps(value, separators=(",", ":"))) > DATA_SCHEMA_MAX_BYTES:
            raise ValueError(f"larger than {DATA_SCHEMA_MAX_BYTES} bytes")
        if content_problem(value, max_depth=DATA_SCHEMA_MAX_DEPTH) is not None:
            raise ValueError(f"nested deeper than {DATA_SCHEMA_MAX_DEPTH} levels")
        try:
            jsonschema.Draft202012Validator.check_schema(value)
        except jsonschema.SchemaError as exc:
            where = "/".join(str(part) for part in exc.absolute_path)
            raise ValueError(f"not a JSON Schema: {exc.message}" + (f" (at {where})" if where else "")) from exc
        return value

    def connector_config(self) -> ConnectorConfig:
        return CONNECTOR_CONFIGS[self.connector].model_validate(self.config)


class StreamHealthOut(_Strict):
    """The health endpoint's body (docs/contract.md §3)."""

    mode: Literal["event", "hybrid", "polling"]
    paused: bool
    health_score: int = Field(ge=0, le=100)
    verdict: Literal["good", "bad"] | None = None
    last_event_at: str | None = None
    contiguous_seq: int | None = None
    highest_seq: int | None = None
    upstream_seq: int | None = None
    delivery_rate: float | None = None


def field_errors(exc: ValidationError, *, prefix: str = "") -> list[dict[str, str]]:
    """pydantic errors as docs/contract.md §2 `errors[]` entries."""
    out = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"])
        field = f"{prefix}.{location}" if prefix and location else (prefix or location or "body")
        out.append({"field": field, "message": error["msg"]})
    return out


def validate_source(body: dict[str, Any]) -> tuple[DataSourceConfig | None, list[dict[str, str]]]:
    """The definition, or every error in it (top-level and connector config alike)."""
    errors: list[dict[str, str]] = []
    spec = None
    try:
        spec = DataSourceConfig.model_validate(body)
    except ValidationError as exc:
        errors = field_errors(exc)
    connector = body.get("connector")
    connector_type = CONNECTOR_CONFIGS.get(connector) if isinstance(connector, str) else None  # type: ignore[call-overload]
    if connector_type is not None and isinstance(body.get("config"), dict):
        try:
            connector_type.model_validate(body["config"])
        except ValidationError as exc:
            errors += field_errors(exc, prefix="config")
    return (None, errors) if errors else (spec, [])
