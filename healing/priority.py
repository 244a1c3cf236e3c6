"""Failure queue priority: how bad the kind of failure is, times what the tenant pays for.

Pure. Higher runs first; ties go to the oldest failure.
"""

from __future__ import annotations

SEVERITY = {
    "auth_failed": 5,
    "schema_invalid": 4,
    "upstream_unavailable": 4,
    "reconciliation_drift": 4,
    "upstream_timeout": 3,
    "stream_silent": 3,
    "flapping": 3,
    "poll_error": 3,
    "callback_failing": 3,
    "upstream_forbidden": 3,
    "stream_gaps": 2,
    "rate_limited": 2,
}
DEFAULT_SEVERITY = 2
TIER_WEIGHT = {"free": 1, "standard": 2, "premium": 3}


def severity(kind: str) -> int:
    return SEVERITY.get(kind, DEFAULT_SEVERITY)


def priority(kind: str, tier: str) -> int:
    return severity(kind) * TIER_WEIGHT.get(tier, TIER_WEIGHT["standard"])
