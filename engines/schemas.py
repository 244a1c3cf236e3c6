"""Typed, validated shapes of a data source's configuration (CONTRACT §3).

Every field has a documented default, so `{"name", "connector", config with
the connector's required fields}` is a whole source. Validation errors carry
the field path, which the API turns into problem+json `errors[]`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError, model_validator

from engines.modes import Mode

DataFlowMode = Mode


class Connector(StrEnum):
    HTTP = "http"
    SIMULATOR = "simulator"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpConnectorConfig(_Strict):
    """An upstream speaking CONTRACT §6 over HTTP."""

    poll_url: AnyHttpUrl
    snapshot_url: AnyHttpUrl | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    expected_interval_s: float = Field(default=5.0, gt=0, le=86_400)
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    page_limit: int = Field(default=500, ge=1, le=5_000)
    digests: bool = Field(default=True, description="Use ?digest=1 bucket digests when reconciling.")


class SimulatorConnectorConfig(HttpConnectorConfig):
    """The built-in simulator: an http upstream run by BeastFlow itself."""

    scenario: str | None = None


CONNECTOR_CONFIGS: dict[Connector, type[HttpConnectorConfig]] = {
    Connector.HTTP: HttpConnectorConfig,
    Connector.SIMULATOR: SimulatorConnectorConfig,
}


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


class DataSourceConfig(_Strict):
    """A whole source definition as the API accepts it.

    `config` is checked against the connector's own model by
    `validate_source` (so that its errors carry their `config.` path).
    """

    name: Annotated[str, Field(min_length=1, max_length=200)]
    connector: Connector
    config: dict[str, Any]
    hysteresis: HysteresisConfig = Field(default_factory=HysteresisConfig)
    poll: PollConfig = Field(default_factory=PollConfig)
    reconcile: ReconcileConfig = Field(default_factory=ReconcileConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    data_schema: dict[str, Any] | None = Field(
        default=None, description="Optional JSON Schema that every upsert's `data` must match."
    )

    def connector_config(self) -> HttpConnectorConfig:
        return CONNECTOR_CONFIGS[self.connector].model_validate(self.config)


class StreamHealthOut(_Strict):
    """The health endpoint's body (CONTRACT §3)."""

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
    """pydantic errors as CONTRACT §2 `errors[]` entries."""
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
