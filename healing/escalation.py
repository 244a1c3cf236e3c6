"""Escalation of unanswered approval requests: levels and their timeouts.

Pure. Level 0 is told when the request is made; each timeout without a
decision raises the level by one and tells that level's people; after the
last level the request stays `escalated` until someone answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class EscalationPolicy:
    # Seconds to wait at level i before going to level i + 1.
    timeouts_s: Sequence[float] = (900.0, 1800.0, 3600.0)

    @property
    def top_level(self) -> int:
        return len(self.timeouts_s)


@dataclass(frozen=True)
class Step:
    level: int
    next_at: datetime | None  # None: the top level, nobody above to tell


def first_deadline(requested_at: datetime, policy: EscalationPolicy) -> datetime | None:
    if not policy.timeouts_s:
        return None
    return requested_at + timedelta(seconds=policy.timeouts_s[0])


def escalate(level: int, now: datetime, policy: EscalationPolicy) -> Step:
    """The level after a timeout at `level`, and when the next timeout falls."""
    new_level = min(level + 1, policy.top_level)
    if new_level >= policy.top_level:
        return Step(new_level, None)
    return Step(new_level, now + timedelta(seconds=policy.timeouts_s[new_level]))
