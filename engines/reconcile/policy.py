"""When a reconciliation may apply its diff, and when a source is due for one.

Pure: plain numbers in, a decision out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

# An approved diff lifts the cap for the run that follows, up to this many
# times the share approved: the diff is made afresh, and an upstream that
# broke after the approval must not ride on it into a mass delete.
APPROVAL_HEADROOM = 2.0


class HoldReason(StrEnum):
    EMPTY_SNAPSHOT = "empty_snapshot"
    CHANGE_RATIO = "change_ratio"


@dataclass(frozen=True, slots=True)
class SafetyPolicy:
    max_change_ratio: float
    allow_empty: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    apply: bool
    reason: HoldReason | None = None
    detail: str = ""


def decide(*, upstream: int, local: int, destructive: int, policy: SafetyPolicy) -> Decision:
    """Apply, or hold for approval.

    Steps: an empty snapshot against local data is held unless an operator
    approved exactly that; then the share of local records the diff would
    overwrite or delete (`destructive`) is held to the cap. Records the
    upstream adds are not counted: a backfill destroys nothing.
    """
    if upstream == 0 and local > 0 and not policy.allow_empty:
        return Decision(False, HoldReason.EMPTY_SNAPSHOT, f"the upstream snapshot is empty; {local} local records")
    ratio = destructive / local if local else 0.0
    if ratio > policy.max_change_ratio:
        return Decision(
            False,
            HoldReason.CHANGE_RATIO,
            f"{destructive} of {local} local records ({ratio:.1%}) would change or be deleted; "
            f"the cap is {policy.max_change_ratio:.1%}",
        )
    return Decision(True)


def safety_policy(*, max_change_ratio: float, approved_ratio: float | None, approved_empty: bool) -> SafetyPolicy:
    """The configured cap, widened by an operator's approval of a held diff."""
    if approved_ratio is None:
        return SafetyPolicy(max_change_ratio=max_change_ratio)
    return SafetyPolicy(
        max_change_ratio=max(max_change_ratio, min(1.0, approved_ratio * APPROVAL_HEADROOM)),
        allow_empty=approved_empty,
    )


def next_due(*, last_started: datetime | None, created: datetime, interval_s: float) -> datetime | None:
    """When the source's next scheduled run is due; None when scheduled runs are off.

    A source is first reconciled one interval after it was created: the
    first data arrives by push or poll, reconciliation then checks it.
    """
    if interval_s <= 0:
        return None
    return (last_started or created) + timedelta(seconds=interval_s)
