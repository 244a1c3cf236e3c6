"""The healing strategies: what each one does, for which causes, how risky, how success is judged.

Pure metadata (no Django). The callables that carry each strategy out are
wired in one place, `healing.actions.ACTIONS`; the choice between the
strategies of a category is `healing.bandit.choose` over their observed
outcomes. A `low` risk strategy runs on its own; anything riskier waits
for an operator's approval (`needs_approval`).

Success is "health recovered within the window": the failure the action
was taken for is resolved, by its engine (a poll or a reconciliation that
works again) or by the recovery sweep (the stream is healthy again), before
`window_s` has passed. A push-stream failure is only over back in event
mode, so while the hysteresis holds its source in polling the window is
stretched to the hold (healing.healer). `contained` strategies (pausing,
rotating) succeed when the failure stops recurring instead. Holding a
flapping source in polling is not judged `contained`: during the hold no
move towards push is tried, so "no new flap" would be true by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from healing.schemas import RCACategory as C

Risk = Literal["low", "medium", "high"]
Verify = Literal["failure_resolved", "contained"]
Features = Mapping[str, Any]


def _always(features: Features) -> bool:
    return True


def _in_event_mode(features: Features) -> bool:
    return features.get("source_mode") == "event" and not _is_drift(features)


def _not_in_event_mode(features: Features) -> bool:
    return features.get("source_mode") != "event"


def _has_source(features: Features) -> bool:
    return features.get("source_id") is not None


def _push_path(features: Features) -> bool:
    return features.get("path") == "push"


def _shared_outage(features: Features) -> bool:
    return not _is_drift(features) and ((features.get("host_sources") or 0) >= 2 or bool(features.get("host_down")))


def _is_drift(features: Features) -> bool:
    return features.get("kind") == "reconciliation_drift"


def _source_call(features: Features) -> bool:
    """A failure of the source's own calls or stream, which retrying or polling can fix.

    A drift blamed on an earlier outage or gap is fixed by reconciling, not by
    calling the upstream again.
    """
    return _has_source(features) and not _is_drift(features)


def _drift_or_gaps(features: Features) -> bool:
    # Only where there is an upstream truth to reconcile with (a snapshot or a
    # rest listing): elsewhere the reconciliation refuses, and the action would
    # fail for a reason known before it started.
    reconcilable = features.get("reconcilable") is not False
    return _has_source(features) and reconcilable and features.get("kind") in ("reconciliation_drift", "stream_gaps")


@dataclass(frozen=True)
class Strategy:
    name: str
    categories: frozenset[C]
    risk: Risk
    description: str
    verify: Verify = "failure_resolved"
    window_s: float = 120.0
    applies: Callable[[Features], bool] = _always

    @property
    def needs_approval(self) -> bool:
        return self.risk != "low"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "categories": sorted(c.value for c in self.categories),
            "risk": self.risk,
            "description": self.description,
            "verify": self.verify,
            "window_s": self.window_s,
            "needs_approval": self.needs_approval,
        }


STRATEGIES: tuple[Strategy, ...] = (
    Strategy(
        "retry_backoff",
        frozenset({C.UPSTREAM_UNAVAILABLE, C.UPSTREAM_TIMEOUT, C.UNKNOWN}),
        "low",
        "poll again after an exponential backoff (2^attempt seconds)",
        applies=_source_call,
    ),
    Strategy(
        "wait_for_upstream",
        frozenset({C.UPSTREAM_UNAVAILABLE, C.UPSTREAM_TIMEOUT}),
        "low",
        "keep polling on the breaker's schedule and wait for the upstream to come back",
        window_s=300.0,
        applies=_shared_outage,
    ),
    Strategy(
        "reset_circuit_breaker",
        frozenset({C.UPSTREAM_UNAVAILABLE, C.UPSTREAM_TIMEOUT}),
        "low",
        "close the host's circuit breaker and probe it with one poll now",
        window_s=60.0,
        applies=_source_call,
    ),
    Strategy(
        "gap_fill_poll",
        frozenset({C.STREAM_GAPS}),
        "low",
        "poll the feed from the contiguous watermark to fill the missing seqs",
        window_s=60.0,
        applies=_source_call,
    ),
    Strategy(
        "switch_to_polling",
        frozenset({C.STREAM_SILENT, C.STREAM_GAPS, C.UPSTREAM_UNAVAILABLE}),
        "low",
        "move the source to polling now, held for a minute, instead of waiting for more bad verdicts",
        window_s=300.0,
        applies=_in_event_mode,
    ),
    Strategy(
        "keep_polling",
        frozenset({C.STREAM_SILENT}),
        "low",
        "stay on polling (no data is lost there) and let the hysteresis bring the source back once push resumes"
        " and validates; a hold would only delay that",
        window_s=300.0,
        applies=_not_in_event_mode,
    ),
    Strategy(
        "hold_in_polling",
        frozenset({C.FLAPPING}),
        "low",
        "keep the source in polling at least a minute longer (a flap hold may hold it longer) before it tries push"
        " again; it worked when the source is back on push and stays there",
        window_s=300.0,
        applies=_not_in_event_mode,
    ),
    Strategy(
        "slow_polling",
        frozenset({C.RATE_LIMITED}),
        "low",
        "double the source's minimum poll interval (at least the upstream's Retry-After)",
        applies=_has_source,
    ),
    Strategy(
        "full_reconcile",
        frozenset({C.RECONCILIATION_DRIFT, C.STREAM_GAPS, C.UPSTREAM_UNAVAILABLE}),
        "low",  # its own safety cap holds a large diff for approval before applying anything
        "reconcile the source against the upstream snapshot now",
        applies=_drift_or_gaps,
    ),
    Strategy(
        "pause_source",
        frozenset({C.AUTH_FAILED, C.SCHEMA_INVALID}),
        "high",
        "pause the source: no polls, no monitor verdicts, until an operator resumes it",
        verify="contained",
        window_s=60.0,
        applies=_has_source,
    ),
    Strategy(
        "rotate_webhook_secret",
        frozenset({C.AUTH_FAILED}),
        "high",
        "issue a new webhook secret (the upstream must be given it before pushes verify again)",
        verify="contained",
        window_s=60.0,
        applies=_push_path,
    ),
    Strategy(
        "notify_operator",
        frozenset(C),
        "high",
        "ask an operator to fix what healing cannot (credentials, a broken upstream contract)",
        window_s=3600.0,
    ),
)

BY_NAME: dict[str, Strategy] = {s.name: s for s in STRATEGIES}
# After this many automatic strategies failed for one failure, a person is asked.
MAX_AUTOMATIC_ATTEMPTS = 3


def candidates(category: str, features: Features, *, exclude: Sequence[str] = ()) -> list[Strategy]:
    """The strategies that fit this category and situation, registry order, minus `exclude`."""
    return [
        s
        for s in STRATEGIES
        if category in {c.value for c in s.categories} and s.name not in exclude and s.applies(features)
    ]
