"""What the failures, RCA and healing-actions API answers, for /api/schema/ (rendered by healing/selectors.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from beastflow.openapi import example_of, examples_config


class FailureOut(BaseModel):
    model_config = examples_config(
        {
            "id": 12,
            "source": 7,
            "kind": "stream_silent",
            "fingerprint": "stream_silent:7",
            "occurrences": 3,
            "first_seen": "2026-12-06T19:09:00+00:00",
            "last_seen": "2026-12-06T19:10:00+00:00",
            "detail": {"silence_s": 42.0},
            "status": "open",
            "severity": 2,
            "priority": 20,
            "attempts": 1,
            "needs_operator": False,
            "resolved_by": None,
        }
    )

    id: int
    source: int | None
    kind: str = Field(description="poll_error, upstream_unavailable, stream_silent, ... (docs/runbook.md).")
    fingerprint: str
    occurrences: int
    first_seen: str
    last_seen: str
    detail: dict[str, Any]
    status: str = Field(description="open or resolved.")
    severity: int
    priority: int
    attempts: int
    needs_operator: bool
    resolved_by: str | None


class FailurePage(BaseModel):
    results: list[FailureOut]
    next_cursor: str | None


class RCAOut(BaseModel):
    id: int
    source: int | None
    failure: int
    category: str = Field(description="The root cause category ranked first.")
    confidence: float
    evidence: list[Any]
    created_at: str
    confirmed: bool
    rule: str | None
    rules_version: str
    alternatives: list[Any] = Field(description="The other categories considered, with their confidence.")
    learner: Any = Field(description="What the classifier trained on confirmed results says, if it has a say.")
    confirmed_category: str | None
    confirmed_by: str | None
    confirmed_at: str | None
    confirm_note: str | None


class RCAPage(BaseModel):
    results: list[RCAOut]
    next_cursor: str | None


class TimelineItem(BaseModel):
    at: str
    what: str


class RCADetailOut(RCAOut):
    timeline: list[TimelineItem] = Field(description="What happened around the failure, oldest first.")


class LearnerReportOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    confirmed_cases: int
    weight: float = Field(description="How much the classifier counts beside the rules (0..1).")
    held_out: dict[str, Any] = Field(description="Its accuracy on confirmed cases it did not learn from.")


class StrategyCategoryStats(BaseModel):
    category: str
    successes: int
    failures: int
    success_rate: float | None
    posterior_mean: float


class StrategyOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    categories: list[str]
    risk: str
    description: str
    verify: str
    window_s: float
    needs_approval: bool
    successes: int
    failures: int
    success_rate: float | None
    by_category: list[StrategyCategoryStats]


class StrategyPage(BaseModel):
    results: list[StrategyOut]
    next_cursor: str | None = Field(description="Always null: every strategy fits one page.")


class HealingEventOut(BaseModel):
    kind: str
    actor: str
    note: str
    at: str
    detail: Any


class HealingActionOut(BaseModel):
    model_config = examples_config(
        {
            "id": 5,
            "source": 7,
            "rca": 9,
            "strategy": "full_reconcile",
            "risk": "high",
            "status": "awaiting_approval",
            "requested_at": "2026-12-06T19:11:00+00:00",
            "decided_by": None,
            "decided_at": None,
            "outcome": None,
            "reason": None,
            "detail": {"run": 4, "change_ratio": 0.4},
            "failure": 12,
            "category": "data_drift",
            "escalation_level": 0,
            "next_escalation_at": "2026-12-06T19:26:00+00:00",
            "verify_deadline": None,
        }
    )

    id: int
    source: int | None
    rca: int | None
    strategy: str
    risk: str = Field(description="low, medium or high; above low waits for an operator's approval.")
    status: str
    requested_at: str
    decided_by: str | None
    decided_at: str | None
    outcome: Any
    reason: str | None
    detail: Any
    failure: int | None
    category: str | None
    escalation_level: int
    next_escalation_at: str | None
    verify_deadline: str | None


class HealingActionPage(BaseModel):
    results: list[HealingActionOut]
    next_cursor: str | None


class HealingActionDetailOut(HealingActionOut):
    model_config = examples_config(
        {
            **example_of(HealingActionOut),
            "events": [
                {
                    "kind": "requested",
                    "actor": "healer",
                    "note": "",
                    "at": "2026-12-06T19:11:00+00:00",
                    "detail": {"run": 4},
                }
            ],
        }
    )

    events: list[HealingEventOut] = Field(description="The action's audit trail, oldest first.")


class HealingActionDecidedOut(HealingActionDetailOut):
    model_config = examples_config(
        {**example_of(HealingActionDetailOut), "status": "approved", "decided_by": "api_key:3 (ops)"}
    )

    webhook_secret: str | None = Field(
        default=None, description="Only after approving a webhook secret rotation: the new secret, shown once."
    )
