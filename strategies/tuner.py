"""Parameter tuning: propose hysteresis parameters from recorded or simulated histories.

Pure. The tuner never adopts anything: it proposes a version, which is then
tested as an A/B experiment (strategies.services) before any source keeps it.

Steps (`tune`):

1. Measure the current parameters on the histories (strategies.replay): the
   baseline, and the flap budget when none is given: per kind of history
   (a scenario, a class of sources), no more switches per source-hour than
   today, so a proposal that gains on outages cannot buy it with switches
   on the steady sources.
2. Replay every candidate of the grid (`fail_threshold` x `min_dwell_s` by
   default) over the same histories, same seeds.
3. Keep the candidates within budget: on every kind of history, switches
   per source-hour at most its budget; no more flap holds than the
   baseline; no outage left undetected that the baseline detected.
4. Of those, take the one that spends the least time away from push (mean
   time to detect an outage plus mean time back to event mode), the
   smallest `fail_threshold` then `min_dwell_s` on a tie: the fastest
   parameters the history says are safe.

`replay_verdicts` serves live sources, whose history is their recorded
verdicts (health samples), not a simulated upstream: it replays only the
hysteresis (polls taken as catching up at once) and counts switches.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engines.hysteresis import HysteresisPolicy, HysteresisState, ValidationResult, decide
from engines.modes import Mode, Verdict
from strategies.params import StrategyParams, merged
from strategies.replay import History, Metrics, Summary, evaluate_many, summarize

DEFAULT_GRID: dict[str, tuple[float, ...]] = {
    "fail_threshold": (1, 2, 3, 4, 5),
    "min_dwell_s": (0, 5, 10, 15, 30, 60),
}


@dataclass(frozen=True)
class Candidate:
    changes: dict[str, float]
    params: StrategyParams
    summary: Summary
    feasible: bool
    why_not: str = ""
    by_kind: dict[str, Summary] = field(default_factory=dict)

    @property
    def away_s(self) -> float:
        """Time away from push per outage: detect + back (an undetected outage costs nothing here)."""
        return (self.summary.mean_detect_s or 0.0) + (self.summary.mean_back_s or 0.0)


@dataclass(frozen=True)
class Proposal:
    baseline: Candidate
    best: Candidate | None
    budget_per_hour: float
    tried: list[Candidate] = field(default_factory=list)

    @property
    def improves(self) -> bool:
        return self.best is not None and self.best.away_s < self.baseline.away_s

    def as_dict(self) -> dict[str, Any]:
        def one(c: Candidate | None) -> dict[str, Any] | None:
            if c is None:
                return None
            return {"changes": c.changes, "summary": c.summary.as_dict(), "away_s": round(c.away_s, 2)}

        return {
            "budget_per_hour": round(self.budget_per_hour, 2),
            "baseline": one(self.baseline),
            "best": one(self.best),
            "improves": self.improves,
            "candidates": len(self.tried),
            "feasible": sum(1 for c in self.tried if c.feasible),
        }


def tune(
    histories: Sequence[History],
    base: StrategyParams,
    *,
    grid: Mapping[str, Sequence[float]] | None = None,
    budget_per_hour: float | None = None,
) -> Proposal:
    """The fastest hysteresis parameters within the flap budget on these histories (see the steps)."""
    if not histories:
        raise ValueError("no history to tune on")
    grid = DEFAULT_GRID if grid is None else grid
    stored = base.stored()
    baseline_summary, baseline_kinds = _measure(histories, base)
    baseline = Candidate({}, base, baseline_summary, feasible=True, by_kind=baseline_kinds)
    budget = baseline_summary.switches_per_hour if budget_per_hour is None else budget_per_hour
    budgets = {
        kind: (summary.switches_per_hour if budget_per_hour is None else budget_per_hour)
        for kind, summary in baseline_kinds.items()
    }
    names = sorted(grid)
    tried: list[Candidate] = []
    for values in itertools.product(*(grid[name] for name in names)):
        changes = dict(zip(names, values, strict=True))
        hysteresis = {**stored["hysteresis"], **changes}
        if hysteresis.get("max_dwell_s", 0) < hysteresis.get("min_dwell_s", 0):
            hysteresis["max_dwell_s"] = hysteresis["min_dwell_s"]
        try:
            params = StrategyParams.model_validate(merged(stored, {"hysteresis": hysteresis}))
        except ValueError:
            continue  # outside what a source may hold
        summary, kinds = _measure(histories, params)
        why = _why_not(kinds, baseline_kinds, budgets)
        tried.append(Candidate(changes, params, summary, feasible=not why, why_not=why, by_kind=kinds))
    feasible = [c for c in tried if c.feasible]
    best = min(feasible, key=lambda c: (round(c.away_s, 6), *c.changes.values()), default=None)
    return Proposal(baseline=baseline, best=best, budget_per_hour=budget, tried=tried)


def _measure(histories: Sequence[History], params: StrategyParams) -> tuple[Summary, dict[str, Summary]]:
    """All histories pooled, and per kind (the history's name)."""
    results = evaluate_many(histories, params)
    kinds: dict[str, list[Metrics]] = {}
    for result in results:
        kinds.setdefault(result.history, []).append(result)
    return summarize(results), {kind: summarize(rows) for kind, rows in sorted(kinds.items())}


def _why_not(kinds: Mapping[str, Summary], baseline: Mapping[str, Summary], budgets: Mapping[str, float]) -> str:
    for kind, summary in kinds.items():
        before, budget = baseline[kind], budgets[kind]
        if summary.switches_per_hour > budget + 1e-9:
            return f"{kind}: {summary.switches_per_hour:.1f} switches per source-hour, budget {budget:.1f}"
        if summary.flap_holds > before.flap_holds:
            return f"{kind}: {summary.flap_holds} flap holds, baseline {before.flap_holds}"
        if summary.undetected > before.undetected:
            return f"{kind}: {summary.undetected} outages undetected, baseline {before.undetected}"
    return ""


# -- live sources: their recorded verdicts -------------------------------------------------


@dataclass(frozen=True)
class Judged:
    """One recorded judgement: when, the verdict, whether the push had gone quiet."""

    at: float
    verdict: Verdict
    silent: bool = False


def replay_verdicts(judged: Sequence[Judged], policy: HysteresisPolicy) -> tuple[int, int, float]:
    """(switches, flap holds, seconds away from event mode) of these verdicts under a policy.

    Polls are taken to catch up at once and to validate with nothing missed:
    what is left is the hysteresis itself, which is what the tuner varies.
    """
    if not judged:
        return 0, 0, 0.0
    state = HysteresisState.initial(now=judged[0].at)
    switches = holds = 0
    away = 0.0
    previous = judged[0].at
    for one in judged:
        if state.mode is not Mode.EVENT:
            away += one.at - previous
        previous = one.at
        decision = decide(
            state,
            verdict=one.verdict,
            now=one.at,
            policy=policy,
            caught_up=True,
            validation=ValidationResult(polls=1, missed=0),
            silent=one.silent,
        )
        switches += decision.switched
        holds += decision.flapping
        state = decision.state
    return switches, holds, away


def tune_verdicts(
    judged: Sequence[Judged],
    base: Mapping[str, Any],
    *,
    budget_per_hour: float,
    grid: Mapping[str, Sequence[float]] | None = None,
    measure: Callable[[Sequence[Judged], HysteresisPolicy], tuple[int, int, float]] = replay_verdicts,
) -> dict[str, float] | None:
    """The smallest `fail_threshold`, then `min_dwell_s`, whose switches on this history stay within budget.

    None when no candidate does (or there is no history). `base` is the
    source's current `hysteresis` config.
    """
    if len(judged) < 2:
        return None
    hours = max(1e-9, (judged[-1].at - judged[0].at) / 3600.0)
    for _, changes, policy in _policies(base, grid):
        switches, holds, _ = measure(judged, policy)
        if holds == 0 and switches / hours <= budget_per_hour:
            return changes
    return None


def _policies(
    base: Mapping[str, Any], grid: Mapping[str, Sequence[float]] | None
) -> Iterator[tuple[tuple[float, ...], dict[str, float], HysteresisPolicy]]:
    """Every candidate of the grid over the `base` hysteresis config, smallest first.

    The default grid's names come first, in its order (`fail_threshold`, then
    `min_dwell_s`), each over its values sorted: the first candidate that fits
    is the smallest. `max_dwell_s` is raised to `min_dwell_s` where a
    candidate's dwell passes it; a candidate the policy refuses is skipped.
    """
    grid = DEFAULT_GRID if grid is None else grid
    names = sorted(grid, key=lambda n: list(DEFAULT_GRID).index(n) if n in DEFAULT_GRID else len(DEFAULT_GRID))
    for values in itertools.product(*(sorted(grid[name]) for name in names)):
        changes = dict(zip(names, values, strict=True))
        config = {**base, **changes}
        config["max_dwell_s"] = max(float(config.get("max_dwell_s", 600.0)), float(config.get("min_dwell_s", 10.0)))
        try:
            policy = HysteresisPolicy.from_config(config)
        except ValueError:
            continue
        yield values, changes, policy


# -- failure recordings (observability/recording.py) ------------------------------------


@dataclass(frozen=True)
class RecordedOutcome:
    """What a policy does on a failure recording's judgements.

    `misjudged_s`: time spent trusting a push judged bad (in event mode on a
    bad verdict) plus time spent polling a push judged good (off event mode
    on a good verdict): the cost of both a late failover and a late return.
    """

    switches: int
    flap_holds: int
    degrades: int
    away_s: float
    misjudged_s: float
    span_s: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "switches": self.switches,
            "flap_holds": self.flap_holds,
            "away_s": round(self.away_s, 3),
            "misjudged_s": round(self.misjudged_s, 3),
        }


def recording_outcomes(recording: Mapping[str, Any], policy: HysteresisPolicy) -> RecordedOutcome:
    """A failure recording's judgements decided again by the policy alone.

    observability.replay with follow_recorded_state=False: the same signals,
    polls and health config, another hysteresis.
    """
    from observability.replay import replay  # pure, beside the engines' decisions

    result = replay(recording, hysteresis=policy, follow_recorded_state=False)
    if not result.steps:
        return RecordedOutcome(0, 0, 0, 0.0, 0.0, 0.0)
    away = misjudged = 0.0
    previous, mode = result.steps[0].t, Mode.EVENT.value
    for step in result.steps:
        dt = step.t - previous
        if mode != Mode.EVENT.value:
            away += dt
        if (mode == Mode.EVENT.value) == (step.verdict == Verdict.BAD.value):
            misjudged += dt
        previous, mode = step.t, step.mode
    return RecordedOutcome(
        switches=len(result.switches),
        flap_holds=sum(1 for s in result.switches if s.transition == "flap_hold"),
        degrades=sum(1 for s in result.switches if s.transition == "degrade"),
        away_s=away,
        misjudged_s=misjudged,
        span_s=result.steps[-1].t - result.steps[0].t,
    )


def tune_recording(
    recording: Mapping[str, Any],
    base: Mapping[str, Any],
    *,
    budget: int | None = None,
    grid: Mapping[str, Sequence[float]] | None = None,
) -> tuple[dict[str, float] | None, dict[str, Any]]:
    """The candidate that misjudges the push for the least time on this recording, within the budget.

    Budget: at most `budget` switches over the recording (default: as many as
    the current parameters make on it), no flap hold, and the failure still
    noticed where the current parameters notice it. Ties go to the smaller
    `fail_threshold`, then `min_dwell_s`. Returns the changes (None when none
    fits) and what was measured, before and after.
    """
    before = recording_outcomes(recording, HysteresisPolicy.from_config(base))
    limit = before.switches if budget is None else budget
    best: tuple[float, tuple[float, ...], dict[str, float], RecordedOutcome] | None = None
    for values, changes, policy in _policies(base, grid):
        measured = recording_outcomes(recording, policy)
        if measured.switches > limit or measured.flap_holds > 0 or (before.degrades > 0 and measured.degrades == 0):
            continue
        if best is None or (measured.misjudged_s, values) < (best[0], best[1]):
            best = (measured.misjudged_s, values, changes, measured)
    report: dict[str, Any] = {"span_s": before.span_s, "before": before.as_dict(), "budget_switches": limit}
    if best is None:
        return None, report
    report["after"] = best[3].as_dict()
    return best[2], report
