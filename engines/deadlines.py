"""When the monitor next needs to judge a source. Pure.

The monitor no longer judges every source every tick: after each
judgement it sets the source's next deadline, and a source costs nothing
until then (docs/scheduling.md). The deadline is as late as it can be
without changing what the hysteresis would have decided on a tick-by-tick
clock:

- Moving: a switch just happened, a verdict is bad in event or hybrid
  mode, any penalty is counted, or good verdicts are being counted towards
  a recovery in polling. The machine counts consecutive verdicts here, so
  the source is judged every tick, as before.
- Validating: in hybrid on the way back with a clean stream, the decision
  changes when the probation window ends, when a poll reports (it wakes
  the source) or at a first bad verdict: silence, whose deadline is known,
  or what a push brought, looked at after `active_s` (as in event mode);
  every `dormant_s` besides.
- Catching up: in hybrid on the way down, the machine waits for a poll
  that reaches the upstream head and reads nothing else (its verdict runs
  start afresh at the next switch). That poll wakes the source
  (engines.polling), so it is judged then, and every `dormant_s` besides.
  A mass outage puts a thousand sources here at once, all waiting for
  their polls: judging each every tick meanwhile was most of the
  monitor's work and changed nothing.
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
from engines.hysteresis import HysteresisState, Phase
from engines.modes import Mode, Verdict

# Penalties a settled stream may carry: the delivery rate's is capped below the
# verdict line (HealthPolicy.rate_max_penalty), so it only matters with another one.
QUIET_PENALTIES = frozenset({"delivery_rate"})
# The idle safety net comes up to this share of `idle_s` early, at random:
# sources judged together (a thousand tenants resumed at once, a restart)
# would otherwise stay together, every `idle_s`, in a burst the monitor takes
# seconds to work through (1,000 tenants: 7,000 idle sources due at the same
# second every 5 minutes, everything else judged up to 7 s late meanwhile).
IDLE_SPREAD = 0.2


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
    validation_ends_at: float | None = None,
    spread: float = 0.0,
) -> float:
    """The epoch time the source should next be judged at (never sooner than one tick).

    `state` is the state after this judgement's decision; `moved`: the
    stream received events, refused pushes or heartbeats since the last one;
    `validation_ends_at`: in hybrid (recovering), when the probation window
    ends (the machine may then go back to event mode); `spread`: a number
    in [0, 1) the caller draws at random, which brings the idle safety net
    up to IDLE_SPREAD of `idle_s` earlier.
    """
    soonest = now + cadence.tick_s
    if switched:
        return soonest
    if state.mode is Mode.HYBRID and state.phase is Phase.DEGRADING:
        return now + cadence.dormant_s
    if state.mode is Mode.POLLING:
        if health.verdict is Verdict.BAD and state.good == 0:
            return now + cadence.dormant_s
        return soonest
    if state.bad > 0 or any(penalty > 0 for name, penalty in health.penalties.items() if name not in QUIET_PENALTIES):
        return soonest
    silence, allowed = health.measures.get("silence_s"), health.measures.get("allowed_silence_s")
    if state.mode is Mode.HYBRID:
        # Validating a recovery with a clean stream: what can change the
        # decision is the window ending, a poll's findings (a poll wakes the
        # source, engines.polling) or a first bad verdict, which is silence
        # (its deadline) or what a push brought (looked at after `active_s`).
        later = now + (cadence.active_s if moved else cadence.dormant_s)
        if validation_ends_at is not None and validation_ends_at > now:
            later = min(later, validation_ends_at)
    else:
        later = now + (cadence.active_s if moved else cadence.idle_s * (1.0 - IDLE_SPREAD * spread))
    if silence is not None and allowed is not None:
        later = min(later, now + (allowed - silence))
    return max(soonest, later)
