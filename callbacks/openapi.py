"""The bodies the subscriptions API answers, for /api/schema/ (the views render plain dicts: callbacks/selectors.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from beastflow.openapi import example_of, examples_config


class SubscriptionOut(BaseModel):
    model_config = examples_config(
        {
            "id": 2,
            "url": "https://app.example.com/hooks/beastflow",
            "sources": None,
            "signature": "beastflow",
            "status": "active",
            "cursor": 1042,
            "disabled_at": None,
            "disabled_reason": "",
            "failures": 0,
            "failing_since": None,
            "next_attempt_at": None,
            "breaker": "closed",
            "delivered_changes": 1042,
            "attempts_total": 57,
            "failures_total": 1,
            "last_success_at": "2026-12-06T19:08:02+00:00",
            "last_failure_at": "2026-12-06T18:00:00+00:00",
            "last_error": "",
            "created_at": "2026-12-06T17:00:00+00:00",
            "updated_at": "2026-12-06T19:08:02+00:00",
        }
    )

    id: int
    url: str
    sources: list[int] | None = Field(description="The sources delivered; null for every source.")
    signature: Literal["beastflow", "standard-webhooks"]
    status: Literal["active", "disabled"]
    cursor: int = Field(description="The last seq delivered (or skipped past).")
    disabled_at: str | None
    disabled_reason: str
    failures: int = Field(description="Consecutive failed attempts.")
    failing_since: str | None
    next_attempt_at: str | None
    breaker: Literal["closed", "open", "half_open"]
    delivered_changes: int
    attempts_total: int
    failures_total: int
    last_success_at: str | None
    last_failure_at: str | None
    last_error: str
    created_at: str
    updated_at: str


class SubscriptionCreatedOut(SubscriptionOut):
    model_config = examples_config({**example_of(SubscriptionOut), "secret": "q3Lr...shown-once...9xTa"})

    secret: str = Field(description="Shown once: verify callbacks' signatures with it (docs/callbacks.md).")


class SubscriptionPage(BaseModel):
    results: list[SubscriptionOut]
    next_cursor: str | None


class DeliveryOut(BaseModel):
    id: int
    subscription: int
    first_seq: int
    last_seq: int
    count: int
    attempt: int
    status: Literal["succeeded", "failed"]
    http_status: int | None
    error: str
    duration_ms: float
    retry_after_s: float | None
    next_attempt_at: str | None
    created_at: str


class DeliveryPage(BaseModel):
    results: list[DeliveryOut]
    next_cursor: str | None
