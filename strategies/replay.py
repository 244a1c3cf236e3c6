"""The offline evaluator: a signal history replayed against a strategy version, measured.

Pure (no ORM, no I/O). A proposal is judged here before any live source
sees it: the same decisions the monitor makes (engines.health.score_stream,
engines.hysteresis.decide, engines.polling_policy for the polls' rhythm),
driven by a history of what an upstream did second by second instead of by
a real stream.

`history` turns a simulator scenario (simulator/scenarios) and a
seed into that history: per tick, whether push and the feed were up, how
many changes the upstream made and how many of them push delivered (the
phases' rates, outages, flaps and drop rates; Poisson arrivals from the
seed). `evaluate` replays it under a version's parameters and reports the
issue's measured outcomes:

- `detect_s`: from push going down to the source leaving event mode, per
  outage it noticed (`undetected`: outages it rode out);
- `back_s`: from push coming back to the source being back in event mode;
- `switches_per_hour`; `flap_holds` (the flap guard tripped);
- `missed_in_event`: changes push did not deliver while the source still
  trusted push (with seqs a gap-fill poll brings them soon; without, they
  wait for reconciliation);
- `requests`: polls and gap-fill polls sent upstream.

What it leaves out, on purpose: push errors (the scenarios' push faults are
silence, drops and duplicates), request latency (a poll answers within its
tick), and the judge's cadence (judged every tick, as an active source is).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

from engines.health import StreamSignals, score_stream
from engines.hysteresis import HysteresisPolicy, HysteresisState, Transition, ValidationResult, decide
from engines.modes import Mode
from engines.polling_policy import PollPolicy, PollState, after_error, after_success
from observability.replay import health_policy, silent
from simulator.scenario import Scenario, ScenarioPlayer
from strategies.params import StrategyParams

HEARTBEAT_S = 1.0  # the simulator's default keep-alive (engines/demo.py says the same)
CONFIGURED_INTERVAL_S = 1.0  # the demo sources' expected_interval_s
MISS_GRACE_S = 2.0  # engines.monitor.MISS_GRACE_S: a push in flight is not a miss
SMALL_GAP = 100
RATE_ALPHA = 0.05  # engines.monitor.RATE_BASELINE_ALPHA


@dataclass(frozen=True)
class Tick:
    """One tick of the upstream: what was up, what it changed, what push delivered."""

    at: float
    push_up: bool
    feed_up: bool
    changes: int
    pushed: int  # changes push delivered this tick (drops subtracted)
    # When within the tick (0..1) the last push and the heartbeat arrived: the
    # judge's look falls at a different point of the silence every time.
    pushed_at: float = 1.0
    heartbeat_at: float = 1.0


@dataclass(frozen=True)
class History:
    """A replayable upstream: its ticks and where it came from."""

    name: str
    seed: int
    tick_s: float
    ticks: tuple[Tick, ...]

    @property
    def duration_s(self) -> float:
        return len(self.ticks) * self.tick_s


def history(scenario: Scenario, *, seed: int, loops: int = 1, tick_s: float = 1.0) -> History:
    """The scenario played `loops` times (once if it does not repeat), one tick every `tick_s`."""
    rng = random.Random(seed)
    beat_phase = rng.random()  # the keep-alive's rhythm is not the judge's
    player = ScenarioPlayer(scenario, started_at=0.0)
    cycles = loops if scenario.repeat else 1
    count = int(scenario.cycle_s * cycles / tick_s)
    ticks = []
    for i in range(count):
        at = i * tick_s
        where = player.position(at)
        if where is None:
            break
        phase, faults = where.phase, where.phase.faults
        push_up, feed_up = True, True
        if faults.outage in ("push", "all"):
            push_up = False
        if faults.outage in ("feed", "all"):
            feed_up = False
        if faults.flap_up_s > 0 and faults.flap_down_s > 0:
            inside = (at - where.started_at) % (faults.flap_up_s + faults.flap_down_s)
            if inside >= faults.flap_up_s:
                if faults.flap_target in ("push", "all"):
                    push_up = False
                if faults.flap_target in ("feed", "all"):
                    feed_up = False
        rate = 1.0 if phase.mutations_per_s is None else phase.mutations_per_s
        changes = _poisson(rng, rate * tick_s)
        pushed = 0
        if push_up:
            pushed = sum(1 for _ in range(changes) if rng.random() >= faults.drop_rate)
        pushed_at = max((rng.random() for _ in range(pushed)), default=1.0)
        ticks.append(
            Tick(
                at=at,
                push_up=push_up,
                feed_up=feed_up,
                changes=changes,
                pushed=pushed,
                pushed_at=pushed_at,
                heartbeat_at=beat_phase,
            )
        )
    return History(name=scenario.name, seed=seed, tick_s=tick_s, ticks=tuple(ticks))


@dataclass(frozen=True)
class Switch:
    at: float
    to: Mode
    transition: str


@dataclass(frozen=True)
class Metrics:
    """What one replay measured (see the module's list)."""

    history: str
    seed: int
    duration_s: float
    detect_s: tuple[float, ...]
    undetected: int
    back_s: tuple[float, ...]
    switches: int
    flap_holds: int
    missed_in_event: int
    requests: int
    switch_log: tuple[Switch, ...] = field(default=(), repr=False)

    @property
    def switches_per_hour(self) -> float:
        return self.switches * 3600.0 / self.duration_s if self.duration_s else 0.0

    @property
    def requests_per_hour(self) -> float:
        return self.requests * 3600.0 / self.duration_s if self.duration_s else 0.0

    @property
    def mean_detect_s(self) -> float | None:
        return fmean(self.detect_s) if self.detect_s else None

    @property
    def mean_back_s(self) -> float | None:
        return fmean(self.back_s) if self.back_s else None

    def value(self, metric: str) -> float | None:
        """One number per replay for the metric an experiment compares (None: nothing to measure)."""
        if metric == "time_to_detect":
            return self.mean_detect_s
        if metric == "time_to_event":
            return self.mean_back_s
        if metric == "switches_per_hour":
            return self.switches_per_hour
        if metric == "records_lost":
            return float(self.missed_in_event)
        if metric == "upstream_requests":
            return self.requests_per_hour
        raise ValueError(f"the replay does not measure {metric!r}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "seed": self.seed,
            "duration_s": self.duration_s,
            "mean_detect_s": self.mean_detect_s,
            "undetected": self.undetected,
            "mean_back_s": self.mean_back_s,
            "switches_per_hour": round(self.switches_per_hour, 2),
            "flap_holds": self.flap_holds,
            "missed_in_event": self.missed_in_event,
            "requests_per_hour": round(self.requests_per_hour, 1),
        }


@dataclass
class _Poll:
    at: float
    ok: bool
    missed: int


def evaluate(hist: History, params: StrategyParams) -> Metrics:
    """Replay the history under these parameters. Steps per tick:

    1. The upstream's tick: changes made, changes pushed (push up), the
       heartbeat (push up), seqs announced.
    2. Event mode: a small seq gap (drops) gets a gap-fill poll (feed up).
    3. Hybrid and polling: a poll when due, at the rhythm of the poll
       policy; it brings everything up to the head and counts what push
       had missed for longer than the grace.
    4. Score the stream and let the hysteresis decide, as the judge does.
    """
    hysteresis = HysteresisPolicy.from_config(params.hysteresis.model_dump())
    health = health_policy(params.health.model_dump())
    poll_policy = PollPolicy(min_interval_s=params.poll.min_interval_s, max_interval_s=params.poll.max_interval_s)
    rng = random.Random(hist.seed ^ 0x5EED)  # the backoff's jitter, reproducible per history
    tick_s = hist.tick_s
    state = HysteresisState.initial(now=0.0)
    upstream_seq = highest = contiguous = 0
    announced = 0
    unpushed: list[tuple[float, int]] = []  # (made at, seq) that push has not delivered, oldest first
    last_push_at: float | None = None
    last_heartbeat_at: float | None = None
    baseline: float | None = None
    poll_state, next_poll_at = PollState(), 0.0
    polls: list[_Poll] = []
    switches: list[Switch] = []
    flap_holds = missed_in_event = requests = 0
    for tick in hist.ticks:
        now = tick.at + tick_s
        # 1. the upstream's tick
        first = upstream_seq + 1
        upstream_seq += tick.changes
        dropped = tick.changes - tick.pushed
        made = list(range(first, upstream_seq + 1))
        # Which seqs push lost: the last `dropped` of the tick (the choice does not matter to the counts).
        lost = made[len(made) - dropped :] if dropped else []
        if tick.push_up:
            unpushed.extend((tick.at, seq) for seq in lost)
            if tick.pushed:
                highest = max(highest, made[tick.pushed - 1] if not lost else made[-dropped - 1])
                last_push_at = tick.at + tick.pushed_at * tick_s
            last_heartbeat_at = tick.at + tick.heartbeat_at * tick_s
            announced = upstream_seq
            if not unpushed:
                contiguous = max(contiguous, highest)
        else:
            unpushed.extend((tick.at, seq) for seq in made)
        if state.mode is Mode.EVENT and not tick.push_up:
            missed_in_event += tick.changes
        # 2. gap fill in event mode
        gap = max(highest, announced) - contiguous
        if state.mode is Mode.EVENT and 0 < gap <= SMALL_GAP and tick.feed_up and tick.push_up:
            requests += 1
            unpushed = [(at, seq) for at, seq in unpushed if seq > highest]
            contiguous = max(contiguous, highest)
        # 3. polls in hybrid and polling
        if state.mode is not Mode.EVENT and now >= next_poll_at:
            requests += 1
            if tick.feed_up:
                missed = sum(1 for at, _ in unpushed if now - at > MISS_GRACE_S)
                brought = len(unpushed)
                unpushed.clear()
                contiguous = highest = upstream_seq
                polls.append(_Poll(at=now, ok=True, missed=missed))
                plan = after_success(poll_state, changes=brought, has_more=False, policy=poll_policy)
            else:
                polls.append(_Poll(at=now, ok=False, missed=0))
                plan = after_error(poll_state, policy=poll_policy, rand=rng.random)
            poll_state, next_poll_at = plan.state, now + plan.delay_s
        # 4. judge
        rate = tick.pushed / tick_s
        baseline = rate if baseline is None else (1 - RATE_ALPHA) * baseline + RATE_ALPHA * rate
        signals = StreamSignals(
            now=now,
            last_event_at=last_push_at,
            last_heartbeat_at=last_heartbeat_at,
            expected_interval_s=_expected_interval(hist, tick),
            contiguous_seq=contiguous,
            highest_seq=highest,
            upstream_seq=announced,
            delivery_rate=rate,
            baseline_rate=baseline,
            watching_since=0.0,
        )
        scored = score_stream(signals, health)
        since_polls = [p for p in polls if p.at >= state.since]
        ok_polls = [p for p in since_polls if p.ok]
        validation = ValidationResult(polls=len(ok_polls), missed=sum(p.missed for p in ok_polls)) if ok_polls else None
        decision = decide(
            state,
            verdict=scored.verdict,
            now=now,
            policy=hysteresis,
            caught_up=bool(ok_polls),
            validation=validation,
            silent=silent(scored),
        )
        if decision.flapping:
            flap_holds += 1
        if decision.switch_to is not None:
            switches.append(Switch(at=now, to=decision.switch_to, transition=str(decision.transition)))
            if decision.switch_to is not Mode.EVENT and state.mode is Mode.EVENT:
                poll_state, next_poll_at = PollState(), now  # a mode that polls starts polling at once
        state = decision.state
    detect, undetected, back = _episodes(hist, switches)
    return Metrics(
        history=hist.name,
        seed=hist.seed,
        duration_s=hist.duration_s,
        detect_s=tuple(detect),
        undetected=undetected,
        back_s=tuple(back),
        switches=len(switches),
        flap_holds=flap_holds,
        missed_in_event=missed_in_event,
        requests=requests,
        switch_log=tuple(switches),
    )


def evaluate_many(histories: Sequence[History], params: StrategyParams) -> list[Metrics]:
    return [evaluate(h, params) for h in histories]


@dataclass(frozen=True)
class Summary:
    """Metrics of many replays, pooled: what a version did on a set of histories."""

    runs: int
    mean_detect_s: float | None
    undetected: int
    mean_back_s: float | None
    switches_per_hour: float
    flap_holds: int
    missed_in_event: int
    requests_per_hour: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "mean_detect_s": None if self.mean_detect_s is None else round(self.mean_detect_s, 2),
            "undetected": self.undetected,
            "mean_back_s": None if self.mean_back_s is None else round(self.mean_back_s, 2),
            "switches_per_hour": round(self.switches_per_hour, 2),
            "flap_holds": self.flap_holds,
            "missed_in_event": self.missed_in_event,
            "requests_per_hour": round(self.requests_per_hour, 1),
        }


def summarize(results: Sequence[Metrics]) -> Summary:
    detect = [d for r in results for d in r.detect_s]
    back = [b for r in results for b in r.back_s]
    hours = sum(r.duration_s for r in results) / 3600.0 or 1.0
    return Summary(
        runs=len(results),
        mean_detect_s=fmean(detect) if detect else None,
        undetected=sum(r.undetected for r in results),
        mean_back_s=fmean(back) if back else None,
        switches_per_hour=sum(r.switches for r in results) / hours,
        flap_holds=sum(r.flap_holds for r in results),
        missed_in_event=sum(r.missed_in_event for r in results),
        requests_per_hour=sum(r.requests for r in results) / hours,
    )


def _episodes(hist: History, switches: Sequence[Switch]) -> tuple[list[float], int, list[float]]:
    """Per push outage: the time to detect it, and the time back to event mode after it."""
    outages: list[tuple[float, float]] = []
    start: float | None = None
    for tick in hist.ticks:
        if not tick.push_up and start is None:
            start = tick.at
        elif tick.push_up and start is not None:
            outages.append((start, tick.at))
            start = None
    if start is not None:
        outages.append((start, hist.duration_s))
    detect: list[float] = []
    back: list[float] = []
    undetected = 0
    for i, (down, up) in enumerate(outages):
        following = outages[i + 1][0] if i + 1 < len(outages) else math.inf
        left = next(
            (s for s in switches if s.transition == Transition.DEGRADE.value and down <= s.at <= up + 2 * hist.tick_s),
            None,
        )
        if left is None:
            # Ridden out, or still away from push from an earlier outage: nothing to detect.
            if _mode_at(switches, down) is Mode.EVENT:
                undetected += 1
            continue
        detect.append(left.at - down)
        home = next((s for s in switches if s.to is Mode.EVENT and s.at > left.at), None)
        if home is not None and home.at <= following:
            back.append(home.at - up)
        elif home is None or home.at > following:
            # Not back before the next outage (or the end): counted up to then.
            back.append(min(following, hist.duration_s) - up)
    return detect, undetected, back


def _mode_at(switches: Sequence[Switch], at: float) -> Mode:
    mode = Mode.EVENT
    for switch in switches:
        if switch.at > at:
            break
        mode = switch.to
    return mode


def _expected_interval(hist: History, tick: Tick) -> float:
    """What ingest learns (the time between deliveries, heartbeats included), clamped as the monitor does."""
    per_s = tick.pushed / hist.tick_s + 1.0 / HEARTBEAT_S
    learned = 1.0 / per_s if per_s > 0 else CONFIGURED_INTERVAL_S
    return min(max(learned, CONFIGURED_INTERVAL_S / 4), CONFIGURED_INTERVAL_S * 4)


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: fine for the few changes a tick brings."""
    if mean <= 0:
        return 0
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
