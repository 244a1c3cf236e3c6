"""The bodies the console's read-model API answers, for /api/schema/ (console/apis.py renders them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from beastflow.openapi import example_of, examples_config
from engines.openapi import ModeSwitchOut, PollRunOut, SourceHealthOut, SourceOut
from healing.openapi import FailureOut, HealingActionOut, RCAOut


class ModeState(BaseModel):
    mode: str
    since: str
    seconds_in_mode: float
    paused: bool
    hysteresis_state: Any
    hysteresis_policy: dict[str, Any]


class HealthSampleOut(BaseModel):
    at: str
    score: int
    verdict: str
    mode: str
    delivery_rate: float | None
    measures: dict[str, Any]


class FailureWithRCA(FailureOut):
    model_config = examples_config({**example_of(FailureOut), "rca": None})

    rca: RCAOut | None = Field(description="The latest analysis of the failure, if any.")


class DiagnosticsOut(BaseModel):
    """Everything an operator needs about one source, in one answer."""

    source: SourceOut
    mode: ModeState
    health: SourceHealthOut
    signals: list[HealthSampleOut] = Field(description="The latest health samples, newest first.")
    polls: list[PollRunOut]
    switches: list[ModeSwitchOut]
    failures: list[FailureWithRCA] = Field(description="Open failures.")
    healing_actions_awaiting: list[HealingActionOut]
    next_step: dict[str, Any] = Field(description="What to do next, and why.")


class AuditEntryOut(BaseModel):
    at: str
    kind: str = Field(description="mode_switch, failure, rca, healing or operator.")
    source: int | None
    source_name: str | None
    title: str
    summary: str
    actor: str | None
    status: str | None
    correlation_id: str | None
    data: Any


class AuditPage(BaseModel):
    results: list[AuditEntryOut]
    next_cursor: str | None = Field(description="An ISO timestamp; null on the last page.")
