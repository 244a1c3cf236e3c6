"""The suggested next step of a source's diagnostics: pure rules over what the bundle found.

Ordered by what blocks the most: a paused source does nothing at all; a
decision an operator owes blocks healing; a failing poll names its cause;
then what RCA concluded; then the mode. The first rule that matches wins.
No ORM here: the API (console/apis.py) gathers the facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STUCK_IN_POLLING_S = 3600.0
HEALTHY_SCORE = 80


@dataclass(frozen=True)
class Facts:
    paused: bool
    mode: str
    mode_age_s: float
    health_score: int | None
    last_event_age_s: float | None
    last_poll_status: str | None = None  # None: never polled
    last_poll_error_kind: str = ""
    open_failures: tuple[str, ...] = ()  # kinds
    rca: tuple[tuple[str, float], ...] = ()  # (category, confidence) of the open failures' latest analyses
    awaiting_approval: tuple[int, ...] = ()  # healing action ids
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Suggestion:
    action: str
    why: str

    def as_dict(self) -> dict[str, str]:
        return {"action": self.action, "why": self.why}


_POLL_ERRORS = {
    "auth_failed": (
        "fix_credentials",
        "Polls are refused (401/403): check the credentials in the source's config.headers.",
    ),
    "upstream_unavailable": (
        "check_upstream",
        "The upstream does not answer (refused, reset or 5xx): polls retry with backoff; check that it is up.",
    ),
    "upstream_timeout": (
        "check_upstream",
        "The upstream answers too slowly: raise config.timeout_s or check its load.",
    ),
    "rate_limited": (
        "lower_poll_rate",
        "The upstream rate-limits the polls: raise poll.min_interval_s or ask for a larger quota.",
    ),
    "schema_invalid": (
        "fix_mapping",
        "The upstream's answers do not have the expected shape: check the connector config and the data schema.",
    ),
    "upstream_forbidden": (
        "fix_url",
        "The upstream's address is refused by the outbound URL guard: use a public address or allow it.",
    ),
    "poll_error": ("fix_url", "The upstream rejects the poll request (4xx): check the poll URL and its parameters."),
}


def next_step(facts: Facts) -> Suggestion:
    if facts.paused:
        return Suggestion(
            "resume", "The source is paused: nothing is judged, polled or reconciled until it is resumed."
        )
    if facts.awaiting_approval:
        ids = ", ".join(str(pk) for pk in facts.awaiting_approval)
        return Suggestion(
            "decide_healing_action",
            f"Healing action(s) {ids} await an operator: approve or reject them (/api/v1/healing-actions/<id>).",
        )
    if facts.last_poll_status == "failed" and facts.last_poll_error_kind in _POLL_ERRORS:
        action, why = _POLL_ERRORS[facts.last_poll_error_kind]
        return Suggestion(action, why)
    for kind in facts.open_failures:
        if kind in _POLL_ERRORS:
            action, why = _POLL_ERRORS[kind]
            return Suggestion(action, why)
    if facts.rca:
        category, confidence = max(facts.rca, key=lambda pair: pair[1])
        return Suggestion(
            "follow_rca",
            f"RCA says {category} ({confidence:.0%} confident): see docs/runbook.md and the failure's evidence.",
        )
    if facts.mode == "polling" and facts.mode_age_s >= STUCK_IN_POLLING_S:
        hours = facts.mode_age_s / 3600
        return Suggestion(
            "fix_push",
            f"Polled for {hours:.1f} h: the push has not come back. Check the upstream's webhook "
            "(it must post to the source's ingest_url with its secret); nothing is lost meanwhile.",
        )
    if facts.mode == "polling":
        return Suggestion("wait", "Polling while the push is degraded; the monitor returns to push once it recovers.")
    if facts.mode == "hybrid":
        return Suggestion(
            "wait", "Between modes: pushes are checked against polls; the monitor decides within its dwell."
        )
    if facts.health_score is not None and facts.health_score < HEALTHY_SCORE:
        return Suggestion("watch", "The stream is degrading but not switched yet: watch its signals.")
    return Suggestion("none", "Healthy: push mode, nothing open.")
