"""Replay a failure recording: the monitor's decisions, made again offline from what was recorded.

Pure: a recording (the JSON document of observability/recording.py, format
in docs/observability.md) in, the switches out. No database, no Redis, no
wall clock: every time comes from the recording, so a replay is
deterministic and can run anywhere, as often as wanted, with another policy
(an offline evaluator passes `hysteresis=`).

For each recorded judgement, oldest first, the steps the monitor took
(engines/judge.py, engines/monitor.py):

1. the hysteresis state before it: the one the monitor read from the source
   row (`follow_recorded_state`, the default: each decision is reproduced
   from exactly what the monitor saw, and an outside change such as an
   operator's forced mode or a healing hold is taken as it happened), or the
   one this replay evolved itself (`follow_recorded_state=False`: what the
   policy alone would have done, for what-if runs);
2. the stream's health from the recorded signals (engines.health.score_stream)
   under the source's health config;
3. in hybrid only, what the recorded polls had found by then, since the mode
   began: whether one caught up, how many ran, how many events they brought
   that push had missed (past the grace a push in flight gets; for `rest`
   sources the misses the polls counted);
4. engines.hysteresis.decide; a switch is kept with its time and reason.

`compare` then matches the replayed switches with the monitor's own from the
recording (operators' and healing's forced switches are not the monitor's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engines.health import HealthPolicy, StreamSignals, score_stream
from engines.health import silent as silent  # strategies/replay.py imports it from here
from engines.hysteresis import HysteresisPolicy, HysteresisState, ValidationResult, decide
from engines.modes import Mode

FORMAT = "beastflow.failure-recording"
VERSION = 1
DEFAULT_MISS_GRACE_S = 2.0  # engines.monitor.MISS_GRACE_S when the recording does not say


class RecordingError(ValueError):
    """The document is not a failure recording this code can replay."""


@dataclass(frozen=True)
class Switch:
    t: float
    from_mode: str
    to_mode: str
    transition: str
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "t": self.t,
            "from": self.from_mode,
            "to": self.to_mode,
            "transition": self.transition,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Step:
    """One judgement replayed: its time, the health and verdict, the mode after it."""

    t: float
    score: int
    verdict: str
    mode: str
    switched: bool


@dataclass(frozen=True)
class Comparison:
    matched: bool
    replayed: tuple[Switch, ...]
    actual: tuple[Switch, ...]
    differences: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReplayResult:
    switches: tuple[Switch, ...]
    steps: tuple[Step, ...]
    # Judgements whose recorded state differed from the one this replay had evolved (taken as recorded).
    outside_changes: tuple[float, ...] = field(default_factory=tuple)


def check(recording: Mapping[str, Any]) -> None:
    if recording.get("format") != FORMAT:
        raise RecordingError(f"not a failure recording (format is {recording.get('format')!r}, expected {FORMAT!r})")
    if recording.get("version") != VERSION:
        raise RecordingError(f"recording version {recording.get('version')!r}; this code replays version {VERSION}")
    if not isinstance(recording.get("judgements"), list):
        raise RecordingError("the recording has no list of judgements")


# The monitor's own rules (strategies/replay.py reads them from here too).
health_policy = HealthPolicy.from_config


def state_read(entry: Mapping[str, Any]) -> HysteresisState:
    """The state the monitor read for this judgement, read by the monitor's own rule."""
    stored = entry.get("state")
    state, _ = HysteresisState.stored_or_initial(
        stored if isinstance(stored, Mapping) else None, mode=Mode(str(entry["mode"])), now=float(entry["t"])
    )
    return state


def poll_facts(
    recording: Mapping[str, Any], *, since: float, now: float, rest: bool, grace_s: float
) -> tuple[bool, ValidationResult | None]:
    """What the recorded polls had found by `now` since `since` (engines.judge.poll_facts, offline).

    A poll run is visible once it finished (its row is written then);
    polled events once received.
    """
    runs = [
        poll
        for poll in recording.get("polls", [])
        if poll.get("status") == "succeeded"
        and float(poll["started_at"]) >= since
        and float(poll.get("finished_at") or poll["started_at"]) <= now
    ]
    if not runs:
        return False, None
    caught_up = any(bool(poll.get("caught_up")) for poll in runs)
    if rest:
        missed = sum(int(poll.get("missed") or 0) for poll in runs)
    else:
        missed = sum(
            1
            for event in recording.get("polled_events", [])
            if since <= float(event["received_at"]) <= now and _late(event, grace_s)
        )
    return caught_up, ValidationResult(polls=len(runs), missed=missed)


def _late(event: Mapping[str, Any], grace_s: float) -> bool:
    """Push had `grace_s` to deliver this polled event and did not (no occurred_at: counted, as in the judge)."""
    occurred = event.get("occurred_at")
    return occurred is None or float(occurred) < float(event["received_at"]) - grace_s


def replay(
    recording: Mapping[str, Any],
    *,
    hysteresis: HysteresisPolicy | None = None,
    follow_recorded_state: bool = True,
) -> ReplayResult:
    """The switches the monitor's rules make from the recorded judgements (see the module's docstring)."""
    check(recording)
    source = recording.get("source") or {}
    rest = source.get("connector") == "rest"
    grace_s = float((recording.get("constants") or {}).get("miss_grace_s", DEFAULT_MISS_GRACE_S))
    judgements = sorted(recording["judgements"], key=lambda entry: float(entry["t"]))
    switches: list[Switch] = []
    steps: list[Step] = []
    outside: list[float] = []
    state: HysteresisState | None = None
    for entry in judgements:
        t = float(entry["t"])
        recorded = state_read(entry)
        if state is None or follow_recorded_state:
            if state is not None and recorded != state:
                outside.append(t)
            state = recorded
        policy = hysteresis or HysteresisPolicy.from_config(entry.get("hysteresis") or {})
        signals = StreamSignals(**entry["signals"])
        health = score_stream(signals, health_policy(entry.get("health") or {}))
        caught_up, validation = False, None
        if state.mode is Mode.HYBRID:
            caught_up, validation = poll_facts(recording, since=state.since, now=t, rest=rest, grace_s=grace_s)
        decision = decide(
            state,
            verdict=health.verdict,
            now=t,
            policy=policy,
            caught_up=caught_up,
            validation=validation,
            silent=silent(health),
        )
        if decision.switch_to is not None:
            switches.append(
                Switch(
                    t=t,
                    from_mode=state.mode.value,
                    to_mode=decision.switch_to.value,
                    transition=decision.transition.value if decision.transition else "",
                    reason=decision.reason,
                )
            )
        state = decision.state
        steps.append(Step(t, health.score, health.verdict.value, state.mode.value, decision.switched))
    return ReplayResult(switches=tuple(switches), steps=tuple(steps), outside_changes=tuple(outside))


def actual_switches(recording: Mapping[str, Any]) -> tuple[Switch, ...]:
    """The monitor's own switches in the recording, at the time of the judgement that made them."""
    found = []
    for switch in recording.get("switches", []):
        if switch.get("actor") or switch.get("transition") == "forced":
            continue  # an operator's or a healing action's
        t = switch.get("judged_at")
        found.append(
            Switch(
                t=float(t if t is not None else switch["at"]),
                from_mode=str(switch["from"]),
                to_mode=str(switch["to"]),
                transition=str(switch.get("transition") or ""),
                reason=str(switch.get("reason") or ""),
            )
        )
    return tuple(sorted(found, key=lambda s: s.t))


def compare(
    replayed: Sequence[Switch], actual: Sequence[Switch], *, within: tuple[float, float], tolerance_s: float = 1.0
) -> Comparison:
    """Do the replayed switches match the monitor's, in order, each within `tolerance_s`?

    Only the actual switches inside `within` (the judgements' span) are
    expected: one made before the first recorded judgement cannot be replayed.
    """
    start, end = within
    expected = [s for s in actual if start - tolerance_s <= s.t <= end + tolerance_s]
    differences = []
    for n in range(max(len(replayed), len(expected))):
        got = replayed[n] if n < len(replayed) else None
        want = expected[n] if n < len(expected) else None
        if got is None or want is None:
            missing = want if got is None else got
            assert missing is not None
            side = "the monitor made" if got is None else "the replay made"
            what = f"{missing.from_mode} -> {missing.to_mode} ({missing.transition}) at {missing.t:.3f}"
            differences.append(f"#{n + 1}: only {side} {what}")
            continue
        same = (got.from_mode, got.to_mode, got.transition) == (want.from_mode, want.to_mode, want.transition)
        if not same or abs(got.t - want.t) > tolerance_s:
            differences.append(
                f"#{n + 1}: replayed {got.from_mode} -> {got.to_mode} ({got.transition}) at {got.t:.3f}, "
                f"the monitor {want.from_mode} -> {want.to_mode} ({want.transition}) at {want.t:.3f}"
            )
    return Comparison(
        matched=not differences, replayed=tuple(replayed), actual=tuple(expected), differences=tuple(differences)
    )
