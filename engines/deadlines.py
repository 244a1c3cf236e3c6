"""When the monitor next needs to judge a source. Pure.

The monitor no longer judges every source every tick: after each
judgement it sets the source's next deadline, and a source costs nothing
until then (docs/scheduling.md). The deadline is as late as it can be
without changing what the hysteresis would have decided on a tick-by-tick
clock:

- Moving: a switch just happened, a verdict is bad in event mode, any
  penalty is counted, the source is in hybrid, or good verdicts are being
  counted towards a recovery. The machine counts consecutive verdicts
  here, so the source is judged every tick, as before.
- Dormant: in polling with the push still bad and no good verdict yet.
  Another bad verdict changes nothing (the machine only counts it), so
  the source is looked at every `dormant_s` to notice the push coming back.
- Settled: in event mode, no bad verdict, no penalty but the delivery
  rate's (capped below the verdict line in engines/health.py, it never
  turns a verdict bad alone, and a sparse stream carries it between two
  pushes; with any other penalty the source is moving anyway). The next
  thing that can happen on its own is silence, which starts at the last
  event or heartbeat plus the allowed silence: that is the deadline. A
  stream that moved since the last judgement (events, errors, heartbeats)
  is also looked at after `active_s`, for what silence cannot show (gaps,
  refused pushes, a falling rate); one that did not move, after `idle_s`
  at most, a safety net that costs a thousand idle sources a few
  judgements a second.

A push never writes a deadline: the ingest path stays as it is. What a push
changes is read at the next judgement: silence is judged from the last
arrival, so a stream that keeps pushing meets its silence deadline
already renewed and gets a new one.
"""

from __future__ import annotations

from dataclasses import dataclass

from engines.health import StreamHealth
from engines.hysteresis import HysteresisState
from engines.modes import Mode, Verdict

# Penalties a settled stream may carry: the delivery rate's is capped below the
# verdict line (HealthPolicy.rate_max_penalty), so it only matters with another one.
QUIET_PENALTIES = frozenset({"delivery_rate"})


@dataclass(frozen=True)
class Cadence:
    """How often a source is judged in each situation (seconds)."""

    tick_s: float = 1.0
    dormant_s: float = 5.0
    active_s: float = 5.0
    idle_s: float = 300.0

    def __post_init__(self) -> None:
        if not 0 < self.tick_s <= min(self.dormant_s, self.active_s, self.idle_s):
            raise ValueError("0 < tick_s <= dormant_s, active_s and idle_s is required")


def next_judgement(
    *,
    now: float,
    cadence: Cadence,
    health: StreamHealth,
    state: HysteresisState,
    switched: bool,
    moved: bool,
) -> float:
    """The epoch time the source should next be judged at (never sooner than one tick).

    `state` is the state after this judgement's decision; `moved`: the
    stream received events, refused pushes or heartbeats since the last one.
    """
    soonest = now + cadence.tick_s
    if switched or state.mode is Mode.HYBRID:
        return soonest
    if state.mode is Mode.POLLING:
        if health.verdict is Verdict.BAD and state.good == 0:
            return now + cadence.dormant_s
        return soonest
    if state.bad > 0 or any(penalty > 0 for name, penalty in health.penalties.items() if name not in QUIET_PENALTIES):
        return soonest
    later = now + (cadence.active_s if moved else cadence.idle_s)
    silence, allowed = health.measures.get("silence_s"), health.measures.get("allowed_silence_s")
    if silence is not None and allowed is not None:
        later = min(later, now + (allowed - silence))
    return max(soonest, later)
