"""Typed shapes of failures and their root-cause analysis (docs/contract.md §7)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RCACategory(StrEnum):
    STREAM_SILENT = "stream_silent"
    STREAM_GAPS = "stream_gaps"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    RATE_LIMITED = "rate_limited"
    AUTH_FAILED = "auth_failed"
    SCHEMA_INVALID = "schema_invalid"
    RECONCILIATION_DRIFT = "reconciliation_drift"
    FLAPPING = "flapping"
    UNKNOWN = "unknown"


class FailureReport(BaseModel):
    """What an engine reports when something fails; becomes a FailureRecord."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(min_length=1, max_length=32)
    source_id: int | None = None
    # The parts that make two reports "the same problem" (e.g. host and
    # status code), hashed into the fingerprint; not the time or counters.
    identity: dict[str, Any] = Field(default_factory=dict)
    detail: dict[str, Any] = Field(default_factory=dict)

    def fingerprint(self) -> str:
        canonical = json.dumps(
            {"kind": self.kind, "source": self.source_id, **self.identity}, sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


class RCAResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    category: RCACategory
    confidence: float = Field(ge=0, le=1)
    evidence: list[dict[str, Any]] = Field(default_factory=list)
    rule: str | None = Field(default=None, description="Rule id and version that concluded, if any.")
    created_at: datetime | None = None
