"""The simulator's failure scenarios, played against a real source with worker, beat and web server.

Shared by tests/healing/test_scenarios_e2e.py and bench/healing.py. Each
scenario: a healthy warm-up, a fault phase, the faults cleared, then a wait
until every failure of the source is resolved or an operator is asked
(`settle_s`: 90 s, longer where the source's policy holds it longer).
The incident's RCA category is the most confident RCA result among its
failures (the primary diagnosis); it is resolved without a person when all
its failures closed and no healing action waited for or got a person's
decision.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from engines.hysteresis import HysteresisPolicy
from healing.healer import AUTOMATIC
from healing.recovery import STREAM_QUIET_S


@dataclass(frozen=True)
class Scenario:
    name: str
    cause: str  # the known root cause: the RCA category it should get
    faults: dict[str, Any] = field(default_factory=dict)
    traffic: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 15.0
    needs_person: bool = False  # healing must not fix it alone: it must ask


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("outage", "upstream_unavailable", {"outage": "all"}, duration_s=12),
    Scenario("flapping", "flapping", {"flap_up_s": 1.5, "flap_down_s": 2.5}, duration_s=35),
    Scenario("drops", "stream_gaps", {"drop_rate": 0.3}, duration_s=15),
    Scenario("429 storm", "rate_limited", {"http_429_rate": 1.0, "retry_after_s": 2}, duration_s=15),
    Scenario("401", "auth_failed", {"auth_fail": True}, duration_s=15, needs_person=True),
    Scenario("schema break", "schema_invalid", {"schema_break_rate": 0.5}, duration_s=12, needs_person=True),
    Scenario("silent drift", "reconciliation_drift", traffic={"silent_rate": 0.5}, duration_s=15),
)
BY_NAME = {s.name: s for s in SCENARIOS}

# A source that reacts in seconds: tight silence judgement, fast polls and reconciliations.
SOURCE_TUNING: dict[str, Any] = {
    "hysteresis": {
        "fail_threshold": 2,
        "recover_threshold": 3,
        "min_dwell_s": 3,
        "max_dwell_s": 20,
        "validation_window_s": 3,
    },
    "poll": {"min_interval_s": 0.5, "max_interval_s": 2},
    "reconcile": {"interval_s": 5, "max_change_ratio": 1.0},
    "health": {"silence_tolerance": 1.5, "min_silence_s": 0.5},
}
SETTLE_S = 90.0
# Ticks (monitor 1 s, healing 2 s), the validation's confirming poll, the final query.
SETTLE_SLACK_S = 30.0


def settle_s(scenario: Scenario) -> float:
    """How long to wait for the incident to settle once the faults are cleared.

    Flapping honestly needs longer: the hysteresis holds a flapping source in
    polling until its flap window has room for a whole recovery (so it gets
    back in one go and the window never sees more than flap_switches + 2
    switches). The switches that count all happened before the faults
    cleared, so the hold ends at most `flap_window_s` (300 s, the default;
    the tuning leaves it) later; then the validation window, and the
    flapping failure's quiet time back in event mode.
    """
    if not scenario.faults.get("flap_up_s"):
        return SETTLE_S
    policy = HysteresisPolicy.from_config(SOURCE_TUNING["hysteresis"])
    needed = policy.flap_window_s + policy.validation_window_s + STREAM_QUIET_S["flapping"] + SETTLE_SLACK_S
    return max(SETTLE_S, needed)


@dataclass
class Outcome:
    scenario: str
    cause: str
    category: str | None
    confidence: float | None
    evidence: str
    failures: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    source: dict[str, Any]  # its mode, seqs and mode switches when the wait ended
    resolved: bool
    without_person: bool
    asked_person: bool
    seconds: float

    @property
    def correct(self) -> bool:
        return self.category == self.cause

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "correct": self.correct}


def incident(source_id: int) -> dict[str, Any]:
    """The source's failures, their RCA and healing actions, its mode and seqs, read in the current tenant schema."""
    from engines.models import ModeSwitch, Source, StreamState
    from healing.models import FailureRecord, HealingAction, RCAResult

    rows = FailureRecord.objects.filter(source_id=source_id).values(
        "id", "kind", "status", "occurrences", "resolved_by", "detail"
    )
    # Of the detail, only what the recovery sweep closed it on.
    failures = [
        {k: v for k, v in row.items() if k != "detail"} | {"resolution": (row["detail"] or {}).get("resolution")}
        for row in rows
    ]
    analyses = list(
        RCAResult.objects.filter(source_id=source_id)
        .order_by("-confidence", "id")
        .values("failure_id", "category", "confidence", "evidence")
    )
    actions = list(
        HealingAction.objects.filter(source_id=source_id)
        .order_by("id")
        .values("strategy", "risk", "status", "decided_by", "category")
    )
    source = Source.objects.filter(pk=source_id).values("mode", "verdict").first() or {}
    seqs = StreamState.objects.filter(source_id=source_id).values("contiguous_seq", "highest_seq", "upstream_seq")
    # The way the modes went, for reading a surprising outcome afterwards.
    switches = [
        {"at": s.at.isoformat(), "to": s.to_mode, "transition": s.transition, "reason": s.reason[:160]}
        for s in ModeSwitch.objects.filter(source_id=source_id).order_by("at", "id")
    ]
    return {
        "failures": failures,
        "analyses": analyses,
        "actions": actions,
        "source": {**source, **(seqs.first() or {}), "switches": switches},
    }


def settled(state: dict[str, Any], scenario: Scenario) -> bool:
    if not state["analyses"] or len(state["analyses"]) < len(state["failures"]):
        return False
    if scenario.needs_person:
        return any(a["status"] in ("awaiting_approval", "escalated") for a in state["actions"])
    all_closed = all(f["status"] == "resolved" for f in state["failures"])
    running = any(a["status"] in ("running", "approved") for a in state["actions"])
    return all_closed and not running


def judge(scenario: Scenario, state: dict[str, Any], seconds: float) -> Outcome:
    top = state["analyses"][0] if state["analyses"] else None
    asked = any(
        a["status"] in ("awaiting_approval", "escalated", "rejected")
        or (a["status"] not in ("running", "succeeded", "failed") and a["decided_by"] != AUTOMATIC)
        or (a["decided_by"] and a["decided_by"] != AUTOMATIC)
        for a in state["actions"]
    )
    resolved = bool(state["failures"]) and all(f["status"] == "resolved" for f in state["failures"])
    evidence = "; ".join(str(e.get("text")) for e in (top["evidence"] if top else [])[:2])
    return Outcome(
        scenario=scenario.name,
        cause=scenario.cause,
        category=top["category"] if top else None,
        confidence=top["confidence"] if top else None,
        evidence=evidence,
        failures=state["failures"],
        actions=state["actions"],
        source=state["source"],
        resolved=resolved,
        without_person=resolved and not asked,
        asked_person=asked,
        seconds=round(seconds, 1),
    )


def play(world: Any, scenario: Scenario) -> Outcome:
    """Warm up, fault, clear, wait to settle; `world` is the e2e World (control, query, source_id)."""
    time.sleep(3)
    started = time.monotonic()
    if scenario.faults:
        world.control("faults", scenario.faults)
    if scenario.traffic:
        world.control("traffic", scenario.traffic)
    time.sleep(scenario.duration_s)
    if not scenario.needs_person:  # an operator's problem stays until an operator fixes it
        from simulator.faults import Faults

        world.control("faults", Faults().as_dict())
        if scenario.traffic:
            world.control("traffic", {k: 0.0 for k in scenario.traffic})
    deadline = time.monotonic() + settle_s(scenario)
    state = world.query(lambda: incident(world.source_id))
    while time.monotonic() < deadline and not settled(state, scenario):
        time.sleep(1.0)
        state = world.query(lambda: incident(world.source_id))
    return judge(scenario, state, time.monotonic() - started)
