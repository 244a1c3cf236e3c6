"""What the strategy-configs and experiments API answers, for /api/schema/ (rendered by strategies/selectors.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class StrategyVersionOut(BaseModel):
    id: int
    config: str = Field(description="The config's name.")
    number: int = Field(description="1, 2, ... within the config; versions are immutable.")
    params: dict[str, Any] = Field(description="Every parameter: hysteresis, health, poll, healing.")
    author: str
    reason: str
    restores: int | None = Field(description="The version number this one copies back (a rollback).")
    origin: dict[str, Any] = Field(description="Where it came from: a tuner's proposal, an experiment.")
    created_at: str
    sources: int = Field(description="Sources pinned to it by an override (the tenant default not counted).")


class StrategyVersionPage(BaseModel):
    results: list[StrategyVersionOut]
    next_cursor: str | None


class FieldChange(BaseModel):
    field: str = Field(description="section.name, e.g. hysteresis.fail_threshold")
    old: Any
    new: Any


class StrategyDiffOut(BaseModel):
    config: str
    from_number: int
    to_number: int
    changes: list[FieldChange]


class ArmRef(BaseModel):
    id: int
    label: str


class ExperimentResultOut(BaseModel):
    control_n: int
    treatment_n: int
    control_mean: float
    treatment_mean: float
    effect: float = Field(description="treatment mean - control mean, in the metric's unit.")
    relative_effect: float | None
    ci_low: float | None = Field(description="The always-valid confidence sequence's bounds (level 1 - alpha).")
    ci_high: float | None
    p_value: float = Field(description="Always-valid p-value (mixture SPRT): only ever falls.")
    alpha: float
    significant: bool
    samples: int
    metric: str
    guardrails: dict[str, dict[str, float]] = Field(description="Per guardrail, per arm: the per-source counts.")


class ExperimentOut(BaseModel):
    id: int
    name: str
    status: str = Field(description="running, awaiting_approval, promoted, rejected, stopped.")
    metric: str
    control: ArmRef
    treatment: ArmRef
    coverage: float
    share: float
    stratify_by: list[str]
    bucket_s: float
    guardrails: dict[str, float]
    alpha: float
    arms: dict[str, int] = Field(description="Sources per arm.")
    strata: dict[str, dict[str, int]] = Field(description="Sources per stratum and arm.")
    result: ExperimentResultOut | None
    p_value: float
    started_by: str
    started_at: str
    evaluated_at: str | None
    ended_at: str | None
    end_reason: str
    decided_by: str


class ExperimentPage(BaseModel):
    results: list[ExperimentOut]
    next_cursor: str | None


class TuneOut(BaseModel):
    budget_per_hour: float | None
    baseline: dict[str, Any]
    best: dict[str, Any] | None
    improves: bool
    candidates: int
    feasible: int
    version: StrategyVersionOut | None = Field(description="The proposal, stored as a new version (not adopted).")
    experiment: ExperimentOut | None = Field(description="The experiment started on it, when a metric was given.")
