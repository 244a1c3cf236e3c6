"""HysteresisManager: when a source moves between event, hybrid and polling.

Pure Python over plain data. Each monitor tick calls `decide` with the
source's stored `HysteresisState`, the StreamMonitor's verdict and what the
polls reported; it stores `Decision.state` back (as JSON, `to_dict`) and, when
`Decision.switch_to` is set, writes the switch with `Decision.reason` to the
audit trail. `paused` is orthogonal: a paused source is simply not decided.
`push_allowed_at` tells a caller the soonest the policy lets a held source
back on push (healing waits that long before judging a stream failure).

The machine (docs/modes.md, the state diagram):

    event             --fail_threshold bad verdicts in a row-->              hybrid (degrading)
    hybrid degrading  --a poll caught up to the upstream head-->             polling
    polling           --recover_threshold good verdicts, dwell passed-->     hybrid (recovering)
    hybrid recovering --validation window passed, polls found no misses-->   event
    hybrid recovering --polls found misses, or fail_threshold bad verdicts--> polling (rolled back)

Dwell: leaving polling waits `min_dwell_s * 2**strikes` (capped at
`max_dwell_s`), fixed when polling is entered (or a later hold a healing
action set while the source was on its way down, whichever ends later). A
rollback and a flap each add a strike; every `flap_window_s` without a
switch forgets one.

Flapping: moves towards safety (out of event, into polling) are never held
back, because refusing them risks data. Moves towards push (out of polling,
into event) are refused when `flap_switches` switches already happened within
`flap_window_s`: the source is held in polling, a strike is added and the
caller raises a `flapping` failure. The hold lasts the grown dwell and at
least until the window has room for a whole recovery (two switches), so a
stream that is healthy again gets back to event in one go.

A push that flaps faster than the thresholds never flaps the mode: it comes
back for fewer good verdicts than `recover_threshold` and goes silent again,
and polling (or a healing hold) contains it. That is still flapping, of the
upstream: when the push goes silent again `flap_switches` times within
`flap_window_s` while the source is in polling, the source is held (a strike,
the grown dwell) and the caller raises a `flapping` failure, without a switch.

Why K switches are allowed (docs/adr/0004-hysteresis.md): one clean outage-and-recovery
is already four switches (event, hybrid, polling, hybrid, event), so counting
"K switches in W" as flapping with the default K=4 would flag every short
outage. Here K switches in W are allowed; the next move towards push is the
flap. Consequence (tested as a property): any window of `flap_window_s` holds
at most `flap_switches + 2` switches.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from engines.health import SMALL_GAP_SEQ, seq_gap
from engines.modes import Mode, Verdict

# 2**30 times any sane min_dwell_s is far past any max_dwell_s: a cap on the
# exponent keeps the arithmetic finite whatever the stored state says.
_MAX_STRIKES = 30


class Phase(StrEnum):
    """Why a source is in hybrid: on its way down or on probation back up."""

    DEGRADING = "degrading"
    RECOVERING = "recovering"


class Transition(StrEnum):
    """What a decision did, machine-readable (the reason says it for humans)."""

    DEGRADE = "degrade"  # event -> hybrid (degrading)
    CAUGHT_UP = "caught_up"  # hybrid (degrading) -> polling
    RECOVER = "recover"  # polling -> hybrid (recovering)
    VALIDATED = "validated"  # hybrid (recovering) -> event
    ROLLBACK = "rollback"  # hybrid (recovering) -> polling
    FLAP_HOLD = "flap_hold"  # a move towards push refused: held in polling
    FORCED = "forced"  # an operator or a healing action chose the mode


@dataclass(frozen=True)
class HysteresisPolicy:
    """The source's `hysteresis` config (docs/contract.md §3), with its defaults.

    - `fail_threshold` (3): bad verdicts in a row that leave event mode, or
      that roll a recovery back.
    - `recover_threshold` (5): good verdicts in a row that leave polling.
    - `min_dwell_s` (10): least time in polling; doubles with each strike.
    - `max_dwell_s` (600): cap of the grown dwell.
    - `flap_switches` (4): switches within `flap_window_s` after which a move
      towards push is flapping (one clean round trip is four switches).
    - `flap_window_s` (300): the flap window, also the quiet period after
      which one strike is forgiven.
    - `validation_window_s` (30): probation in hybrid (recovering) before
      push is trusted again.
    """

    fail_threshold: int = 3
    recover_threshold: int = 5
    min_dwell_s: float = 10.0
    max_dwell_s: float = 600.0
    flap_switches: int = 4
    flap_window_s: float = 300.0
    validation_window_s: float = 30.0

    def __post_init__(self) -> None:
        if self.fail_threshold < 1 or self.recover_threshold < 1:
            raise ValueError("fail_threshold and recover_threshold must be >= 1")
        if not 0 <= self.min_dwell_s <= self.max_dwell_s:
            raise ValueError("0 <= min_dwell_s <= max_dwell_s is required")
        # The hold after a flap leaves room for two switches (polling ->
        # hybrid -> event); with fewer allowed, recovery could never finish.
        if self.flap_switches < 2:
            raise ValueError("flap_switches must be >= 2")
        if self.flap_window_s <= 0 or self.validation_window_s < 0:
            raise ValueError("flap_window_s > 0 and validation_window_s >= 0 are required")

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> HysteresisPolicy:
        """Build from the stored JSON config; missing keys take the defaults.

        Unknown keys are ignored (the API validates the config; a key dropped
        by a later version must not break the monitor).
        """
        d = cls()

        def number(name: str, default: float) -> float:
            return _as_float(config.get(name, default), name)

        def integer(name: str, default: int) -> int:
            return _as_int(config.get(name, default), name)

        return cls(
            fail_threshold=integer("fail_threshold", d.fail_threshold),
            recover_threshold=integer("recover_threshold", d.recover_threshold),
            min_dwell_s=number("min_dwell_s", d.min_dwell_s),
            max_dwell_s=number("max_dwell_s", d.max_dwell_s),
            flap_switches=integer("flap_switches", d.flap_switches),
            flap_window_s=number("flap_window_s", d.flap_window_s),
            validation_window_s=number("validation_window_s", d.validation_window_s),
        )

    def dwell_s(self, strikes: int) -> float:
        """The least time in polling after `strikes` rollbacks or flaps."""
        return min(self.max_dwell_s, self.min_dwell_s * 2.0 ** min(max(0, strikes), _MAX_STRIKES))


@dataclass(frozen=True)
class ValidationResult:
    """What the polls of a recovery's validation window found.

    Counted from the moment the source entered hybrid (recovering), i.e.
    `HysteresisState.since`: `polls` completed, and `missed` events they
    brought that push had not delivered.
    """

    polls: int
    missed: int

    @property
    def failed(self) -> bool:
        return self.missed > 0

    @property
    def passed(self) -> bool:
        return self.polls > 0 and self.missed == 0


@dataclass(frozen=True)
class HysteresisState:
    """Everything the machine remembers about one source, stored as JSON.

    Times are epoch seconds (the caller's clock).
    """

    mode: Mode = Mode.EVENT
    since: float = 0.0  # when the current mode was entered
    phase: Phase | None = None  # hybrid only
    bad: int = 0  # bad verdicts in a row
    good: int = 0  # good verdicts in a row
    hold_until: float = 0.0  # polling may not be left before this
    strikes: int = 0  # rollbacks and flaps not yet forgiven
    quiet_since: float = 0.0  # last switch or strike: strikes are forgiven from here
    switches: tuple[float, ...] = ()  # switch times within the flap window
    silences: tuple[float, ...] = ()  # in polling, times the push went silent again, within the flap window

    def __post_init__(self) -> None:
        if (self.mode is Mode.HYBRID) != (self.phase is not None):
            raise ValueError("a phase is required in hybrid mode and only there")

    @classmethod
    def initial(cls, *, now: float, mode: Mode = Mode.EVENT) -> HysteresisState:
        """A new source: push first (docs/modes.md), or polling when asked."""
        if mode is Mode.HYBRID:
            raise ValueError("a source starts in event or polling")
        return cls(mode=mode, since=now, hold_until=now, quiet_since=now)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (for the source row); `from_dict` reads it back."""
        return {
            "mode": self.mode.value,
            "since": self.since,
            "phase": None if self.phase is None else self.phase.value,
            "bad": self.bad,
            "good": self.good,
            "hold_until": self.hold_until,
            "strikes": self.strikes,
            "quiet_since": self.quiet_since,
            "switches": list(self.switches),
            "silences": list(self.silences),
        }

    @classmethod
    def stored_or_initial(
        cls, stored: Mapping[str, object] | None, *, mode: Mode, now: float
    ) -> tuple[HysteresisState, bool]:
        """The state stored for a source now in `mode`, or a fresh one for that mode; and whether a stored
        state was there but unreadable (the caller may say so).

        A stored state of another mode was left by a switch made outside the
        machine (a forced mode): the machine starts again from the mode the
        source is in, polling for a source found in hybrid.
        """
        unreadable = False
        if stored:
            try:
                state = cls.from_dict(stored)
                if state.mode is mode:
                    return state, False
            except ValueError:
                unreadable = True
        return cls.initial(now=now, mode=Mode.POLLING if mode is Mode.HYBRID else mode), unreadable

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> HysteresisState:
        """Read a stored state; missing keys take the defaults, bad values raise ValueError."""
        default = cls()
        raw_phase = data.get("phase")
        raw_switches = data.get("switches", [])
        raw_silences = data.get("silences", [])
        if not isinstance(raw_switches, list | tuple) or not isinstance(raw_silences, list | tuple):
            raise ValueError("switches and silences must be lists of times")
        return cls(
            mode=Mode(str(data.get("mode", default.mode.value))),
            since=_as_float(data.get("since", default.since), "since"),
            phase=None if raw_phase is None else Phase(str(raw_phase)),
            bad=_as_int(data.get("bad", default.bad), "bad"),
            good=_as_int(data.get("good", default.good), "good"),
            hold_until=_as_float(data.get("hold_until", default.hold_until), "hold_until"),
            strikes=_as_int(data.get("strikes", default.strikes), "strikes"),
            quiet_since=_as_float(data.get("quiet_since", default.quiet_since), "quiet_since"),
            switches=tuple(_as_float(t, "switches") for t in raw_switches),
            silences=tuple(_as_float(t, "silences") for t in raw_silences),
        )


@dataclass(frozen=True)
class Decision:
    """The outcome of one tick: the state to store and what happened.

    `switch_to` is the new mode when the source switches (write the audit
    row), else None. `flapping` asks the caller to raise a `flapping` failure.
    `rolled_back` says this decision undid the recovery the previous switch
    started (mark that switch `rolled_back` in the audit trail).
    """

    state: HysteresisState
    switch_to: Mode | None
    transition: Transition | None
    reason: str
    flapping: bool = False
    rolled_back: bool = False

    @property
    def switched(self) -> bool:
        return self.switch_to is not None


@dataclass(frozen=True)
class GapFill:
    """A targeted poll: fetch the feed after `after_seq`, `missing` seqs are due."""

    after_seq: int
    missing: int


def decide(
    state: HysteresisState,
    *,
    verdict: Verdict,
    now: float,
    policy: HysteresisPolicy,
    caught_up: bool = False,
    validation: ValidationResult | None = None,
    silent: bool = False,
) -> Decision:
    """Advance the machine by one monitor tick.

    `caught_up`: a poll reached the upstream head (only read in hybrid
    degrading). `validation`: what the polls found since the recovery began
    (only read in hybrid recovering; None while no poll reported). `silent`:
    a bad verdict is the push going quiet (only read in polling, where a good
    verdict then a silent one is the push coming and going).

    Steps:

    1. Forget one strike per quiet `flap_window_s` since the last switch or
       strike; drop switch times that left the flap window.
    2. Count the verdict: good and bad runs reset each other; in polling, a
       silent verdict after a good one is the push going quiet again, and the
       `flap_switches`-th within the window is flapping (`_push_flapping`).
    3. Apply the current mode's rule (`_in_event`, `_in_hybrid_degrading`,
       `_in_polling`, `_in_hybrid_recovering`); a move towards push first
       passes the flap check (`_towards_push`).
    """
    state = _forget(state, now=now, policy=policy)
    went_quiet = state.mode is Mode.POLLING and verdict is Verdict.BAD and silent and state.good > 0
    if verdict is Verdict.GOOD:
        # In event mode the run of good verdicts is never read (only bad ones lead out, and a
        # bad one resets the run), so there it stops at 1: a settled stream's state is then the
        # same from one judgement to the next, and the batched judge has nothing to write for it.
        state = replace(state, good=1 if state.mode is Mode.EVENT else state.good + 1, bad=0)
    else:
        state = replace(state, bad=state.bad + 1, good=0)
    if went_quiet:
        state = replace(state, silences=(*state.silences, now))
        if len(state.silences) >= policy.flap_switches:
            return _push_flapping(state, now=now, policy=policy)

    if state.mode is Mode.EVENT:
        return _in_event(state, now=now, policy=policy)
    if state.mode is Mode.POLLING:
        return _in_polling(state, now=now, policy=policy)
    if state.phase is Phase.DEGRADING:
        return _in_hybrid_degrading(state, now=now, policy=policy, caught_up=caught_up)
    return _in_hybrid_recovering(state, now=now, policy=policy, validation=validation)


def force_mode(state: HysteresisState, *, to: Mode, now: float, policy: HysteresisPolicy, reason: str) -> Decision:
    """Put the source in `to` on an operator's or a healing action's say-so.

    Bypasses the thresholds and the flap check (someone decided), but is
    recorded like any switch, so it counts towards flapping afterwards.
    Forced hybrid is a recovery on probation: it validates before event.
    """
    state = _forget(state, now=now, policy=policy)
    if to is state.mode:
        return Decision(state=state, switch_to=None, transition=None, reason=f"already in {to}")
    phase = Phase.RECOVERING if to is Mode.HYBRID else None
    moved = _switch(state, to=to, phase=phase, now=now, policy=policy)
    return Decision(state=moved, switch_to=to, transition=Transition.FORCED, reason=f"forced: {reason}")


def hold_in_polling(
    state: HysteresisState, *, now: float, policy: HysteresisPolicy, reason: str, hold_s: float
) -> Decision:
    """Put the source in polling (or keep it there) and hold it there at least `hold_s` from `now`.

    A source already in polling, or on its way down (hybrid, degrading),
    keeps its course with the hold extended: the machine carries the hold
    into polling once its polls caught up. From event or a recovery on
    probation the move is a forced switch (`force_mode`), recorded like any.
    """
    if state.mode is Mode.POLLING or state.phase is Phase.DEGRADING:
        held = replace(state, hold_until=max(state.hold_until, now + hold_s))
        return Decision(state=held, switch_to=None, transition=None, reason=f"held: {reason}")
    decision = force_mode(state, to=Mode.POLLING, now=now, policy=policy, reason=reason)
    return replace(decision, state=replace(decision.state, hold_until=max(decision.state.hold_until, now + hold_s)))


def gap_fill_request(
    *,
    mode: Mode,
    contiguous_seq: int | None,
    highest_seq: int | None,
    upstream_seq: int | None,
    max_gap: int = SMALL_GAP_SEQ,
) -> GapFill | None:
    """A targeted poll for a small gap in event mode, without switching mode.

    Returns None when there is nothing to do: not in event mode (hybrid and
    polling already poll from the watermark), no gap, or a gap too big to be
    a hiccup (health scores it as broken and the machine degrades). Events
    the poll brings that push delivers later are dropped by event-id dedup.
    """
    if mode is not Mode.EVENT or contiguous_seq is None:
        return None
    missing = seq_gap(contiguous_seq, highest_seq, upstream_seq)
    if missing == 0 or missing > max_gap:
        return None
    return GapFill(after_seq=contiguous_seq, missing=missing)


def push_allowed_at(state: HysteresisState, *, policy: HysteresisPolicy) -> float | None:
    """The soonest the policy lets a source it holds away from push be back in event mode.

    For callers that judge what only event mode can prove (healing verifies
    a push-stream failure by the source being back on push): before this
    time, "not back yet" is the policy holding the source, not a verdict on
    the stream. A lower bound, never a promise: a stream that stays healthy
    gets there at this time or later (a flap check or a slow poll adds to it).
    None when the policy holds nothing: already in event mode, or in hybrid
    degrading, where the stream (still catching up) keeps the source.
    """
    if state.mode is Mode.POLLING:
        # Polling is left no sooner than the hold (dwell or flap hold); the validation window follows.
        return state.hold_until + policy.validation_window_s
    if state.mode is Mode.HYBRID and state.phase is Phase.RECOVERING:
        return state.since + policy.validation_window_s
    return None


def _in_event(state: HysteresisState, *, now: float, policy: HysteresisPolicy) -> Decision:
    if state.bad < policy.fail_threshold:
        return _stay(state, f"event: {state.bad}/{policy.fail_threshold} bad verdicts in a row")
    moved = _switch(state, to=Mode.HYBRID, phase=Phase.DEGRADING, now=now, policy=policy)
    reason = f"{state.bad} bad verdicts in a row in event mode: polling from the contiguous watermark"
    return Decision(state=moved, switch_to=Mode.HYBRID, transition=Transition.DEGRADE, reason=reason)


def _in_hybrid_degrading(state: HysteresisState, *, now: float, policy: HysteresisPolicy, caught_up: bool) -> Decision:
    if not caught_up:
        return _stay(state, "hybrid (degrading): polls catching up to the upstream head")
    moved = _switch(state, to=Mode.POLLING, phase=None, now=now, policy=policy)
    reason = f"poll caught up to the upstream head: polling for at least {moved.hold_until - now:.0f}s"
    return Decision(state=moved, switch_to=Mode.POLLING, transition=Transition.CAUGHT_UP, reason=reason)


def _in_polling(state: HysteresisState, *, now: float, policy: HysteresisPolicy) -> Decision:
    if state.good < policy.recover_threshold or now < state.hold_until:
        wait = max(0.0, state.hold_until - now)
        return _stay(
            state,
            f"polling: {state.good}/{policy.recover_threshold} good verdicts in a row, dwell ends in {wait:.0f}s",
        )
    held = _towards_push(state, now=now, policy=policy)
    if held is not None:
        return held
    moved = _switch(state, to=Mode.HYBRID, phase=Phase.RECOVERING, now=now, policy=policy)
    reason = (
        f"{state.good} good verdicts in a row after {now - state.since:.0f}s in polling: "
        f"validating push for {policy.validation_window_s:.0f}s"
    )
    return Decision(state=moved, switch_to=Mode.HYBRID, transition=Transition.RECOVER, reason=reason)


def _in_hybrid_recovering(
    state: HysteresisState, *, now: float, policy: HysteresisPolicy, validation: ValidationResult | None
) -> Decision:
    if validation is not None and validation.failed:
        return _roll_back(state, now=now, policy=policy, why=f"polls found {validation.missed} events push missed")
    if state.bad >= policy.fail_threshold:
        return _roll_back(state, now=now, policy=policy, why=f"{state.bad} bad verdicts in a row while validating")
    elapsed = now - state.since
    if elapsed < policy.validation_window_s:
        return _stay(state, f"hybrid (recovering): validating, {elapsed:.0f}s/{policy.validation_window_s:.0f}s")
    if validation is None or not validation.passed:
        return _stay(state, "hybrid (recovering): validation window passed, waiting for a poll to confirm")
    held = _towards_push(state, now=now, policy=policy)
    if held is not None:
        return held
    moved = _switch(state, to=Mode.EVENT, phase=None, now=now, policy=policy)
    reason = f"validation passed: {validation.polls} polls in {elapsed:.0f}s found nothing push missed"
    return Decision(state=moved, switch_to=Mode.EVENT, transition=Transition.VALIDATED, reason=reason)


def _roll_back(state: HysteresisState, *, now: float, policy: HysteresisPolicy, why: str) -> Decision:
    struck = replace(state, strikes=min(state.strikes + 1, _MAX_STRIKES))
    moved = _switch(struck, to=Mode.POLLING, phase=None, now=now, policy=policy)
    reason = f"validation failed, {why}: rolled back to polling, dwell doubled to {moved.hold_until - now:.0f}s"
    return Decision(
        state=moved, switch_to=Mode.POLLING, transition=Transition.ROLLBACK, reason=reason, rolled_back=True
    )


def _towards_push(state: HysteresisState, *, now: float, policy: HysteresisPolicy) -> Decision | None:
    """The flap check before a move towards push: None when the move may go.

    Otherwise the source is held in polling (switched there from hybrid) with
    one more strike, until the grown dwell has passed and the flap window has
    room for a whole recovery; the decision asks for a `flapping` failure.
    """
    recent = len(state.switches)  # `_forget` kept only those within the window
    if recent < policy.flap_switches:
        return None
    struck = replace(state, strikes=min(state.strikes + 1, _MAX_STRIKES), quiet_since=now)
    if state.mode is Mode.POLLING:
        held = replace(struck, good=0, bad=0, hold_until=now + policy.dwell_s(struck.strikes))
        switch_to = None
    else:
        held = _switch(struck, to=Mode.POLLING, phase=None, now=now, policy=policy)
        switch_to = Mode.POLLING
    # Room for two switches: the (flap_switches - 1)-th newest must have left the window.
    room_at = held.switches[-(policy.flap_switches - 1)] + policy.flap_window_s
    held = replace(held, hold_until=max(held.hold_until, room_at))
    reason = (
        f"flapping: {recent} switches in the last {policy.flap_window_s:.0f}s; "
        f"held in polling for {held.hold_until - now:.0f}s"
    )
    return Decision(
        state=held,
        switch_to=switch_to,
        transition=Transition.FLAP_HOLD,
        reason=reason,
        flapping=True,
        rolled_back=switch_to is not None,  # it was validating a recovery
    )


def _push_flapping(state: HysteresisState, *, now: float, policy: HysteresisPolicy) -> Decision:
    """The push went quiet again once too often while in polling: held there, a strike, no switch.

    The bad verdict keeps the source in polling this tick anyway; the strike
    grows the dwell, so the push has to stay up longer before it is tried.
    """
    struck = replace(state, strikes=min(state.strikes + 1, _MAX_STRIKES), quiet_since=now)
    held = replace(struck, hold_until=max(state.hold_until, now + policy.dwell_s(struck.strikes)))
    reason = (
        f"flapping: the push went quiet again {len(state.silences)} times in the last "
        f"{policy.flap_window_s:.0f}s while in polling; held in polling for {held.hold_until - now:.0f}s"
    )
    return Decision(state=held, switch_to=None, transition=Transition.FLAP_HOLD, reason=reason, flapping=True)


def _switch(
    state: HysteresisState, *, to: Mode, phase: Phase | None, now: float, policy: HysteresisPolicy
) -> HysteresisState:
    """Enter `to`: fresh verdict runs, the switch on record, the dwell fixed on entering polling.

    A hold already set (healing holds a degrading source before its polls
    caught up) is kept when it ends later than the dwell.
    """
    dwell_end = now + policy.dwell_s(state.strikes)
    hold_until = max(state.hold_until, dwell_end) if to is Mode.POLLING else state.hold_until
    return replace(
        state,
        mode=to,
        phase=phase,
        since=now,
        bad=0,
        good=0,
        hold_until=hold_until,
        quiet_since=now,
        switches=(*state.switches, now),
    )


def _stay(state: HysteresisState, reason: str) -> Decision:
    return Decision(state=state, switch_to=None, transition=None, reason=reason)


def _forget(state: HysteresisState, *, now: float, policy: HysteresisPolicy) -> HysteresisState:
    """Forgive one strike per whole quiet window; keep only switches and silences inside the window."""
    window = policy.flap_window_s
    quiet = now - state.quiet_since
    strikes, quiet_since = state.strikes, state.quiet_since
    if strikes > 0 and quiet >= window:
        periods = math.floor(quiet / window)
        strikes = max(0, strikes - periods)
        quiet_since += periods * window  # the part of a period already served still counts
    switches = tuple(t for t in state.switches if t > now - window)
    silences = tuple(t for t in state.silences if t > now - window)
    if (strikes, quiet_since, switches, silences) == (state.strikes, state.quiet_since, state.switches, state.silences):
        return state
    return replace(state, strikes=strikes, quiet_since=quiet_since, switches=switches, silences=silences)


def _as_float(value: object, name: str) -> float:
    # bool is an int: a stored `true` is a bug, not a number.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _as_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value != int(value):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(value)
