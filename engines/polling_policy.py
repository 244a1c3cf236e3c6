"""PollingEngine scheduling: when to poll next, and whether a host may be called.

Pure Python over plain data (docs/polling.md). After each poll the engine
calls `after_success` or `after_error` with the source's `PollState` and
stores the returned state; `PollPlan.delay_s` says when the next poll is due.
Before calling an upstream host it asks `breaker_check` and afterwards tells
`breaker_record`; the `BreakerState` lives per host (in Redis: a flush just
closes the breakers, which costs a few failed calls, never data).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC
from email.utils import parsedate_to_datetime
from enum import StrEnum

# Caps on exponents: 2**60 seconds is past any configured maximum already.
_MAX_DOUBLINGS = 60


@dataclass(frozen=True)
class PollPolicy:
    """The source's `poll` config (docs/contract.md §3) plus tuning, with defaults.

    - `min_interval_s` (1) / `max_interval_s` (60): bounds of the interval.
    - `target_changes` (10): the interval aims at polls bringing about this
      many changes; more per poll -> shorter, fewer -> longer.
    - `grow_factor` (1.5): at most this much longer per poll (an empty poll
      grows by exactly this).
    - `max_speedup` (4): at most this many times shorter per poll, so one
      burst does not pin the interval to the minimum.
    - `backoff_base_s` (1) / `backoff_max_s` (300): error backoff, doubled
      per consecutive error, with full jitter.
    - `retry_after_cap_s` (3600): an upstream's Retry-After is honoured up to
      this (a typo of a day must not stop a source).
    """

    min_interval_s: float = 1.0
    max_interval_s: float = 60.0
    target_changes: int = 10
    grow_factor: float = 1.5
    max_speedup: float = 4.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 300.0
    retry_after_cap_s: float = 3600.0

    def __post_init__(self) -> None:
        if not 0 < self.min_interval_s <= self.max_interval_s:
            raise ValueError("0 < min_interval_s <= max_interval_s is required")
        if self.target_changes < 1 or self.grow_factor < 1 or self.max_speedup < 1:
            raise ValueError("target_changes, grow_factor and max_speedup must be >= 1")
        if not 0 < self.backoff_base_s <= self.backoff_max_s or self.retry_after_cap_s < 0:
            raise ValueError("0 < backoff_base_s <= backoff_max_s and retry_after_cap_s >= 0 are required")

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> PollPolicy:
        """Build from the stored `poll` JSON; other keys (page_budget) are not scheduling's."""
        d = cls()
        return cls(
            min_interval_s=_as_float(config.get("min_interval_s", d.min_interval_s), "min_interval_s"),
            max_interval_s=_as_float(config.get("max_interval_s", d.max_interval_s), "max_interval_s"),
        )


@dataclass(frozen=True)
class PollState:
    """A source's polling rhythm: the current interval and the error streak.

    `interval_s` 0 means "not learned yet": the first poll runs at the
    minimum. Stored intervals are clamped to the policy in force, so a
    changed config applies at the next poll.
    """

    interval_s: float = 0.0
    errors: int = 0  # consecutive failed polls

    def to_dict(self) -> dict[str, object]:
        return {"interval_s": self.interval_s, "errors": self.errors}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> PollState:
        return cls(
            interval_s=_as_float(data.get("interval_s", 0.0), "interval_s"),
            errors=int(_as_float(data.get("errors", 0), "errors")),
        )


@dataclass(frozen=True)
class PollPlan:
    """When to poll next (`delay_s` from now), the state to store, and why."""

    state: PollState
    delay_s: float
    reason: str


def after_success(
    state: PollState,
    *,
    changes: int,
    has_more: bool,
    policy: PollPolicy,
    retry_after_s: float | None = None,
) -> PollPlan:
    """Adapt the interval to what a successful poll brought.

    Steps:

    1. The error streak ends.
    2. `has_more` (the page budget ran out before the feed did): poll again
       at the minimum interval to drain the backlog.
    3. Otherwise scale the interval by `target_changes / changes`, i.e. the
       interval that would have brought the target at the observed rate,
       bounded to [1 / max_speedup, grow_factor] per poll; an empty poll
       grows by `grow_factor`.
    4. Clamp to [min_interval_s, max_interval_s].
    5. A Retry-After delays this one poll (up to `retry_after_cap_s`); the
       interval itself is not changed by it.
    """
    interval = _clamp(state.interval_s, policy.min_interval_s, policy.max_interval_s)
    if has_more:
        interval, why = policy.min_interval_s, "more pages waiting"
    else:
        factor = policy.target_changes / changes if changes > 0 else math.inf
        interval *= _clamp(factor, 1 / policy.max_speedup, policy.grow_factor)
        why = f"{changes} changes (target {policy.target_changes})"
    interval = _clamp(interval, policy.min_interval_s, policy.max_interval_s)
    delay, why = _honour_retry_after(interval, retry_after_s, policy, why)
    next_state = PollState(interval_s=interval, errors=0)
    return PollPlan(state=next_state, delay_s=delay, reason=f"{why}: next in {delay:.1f}s")


def after_error(
    state: PollState,
    *,
    policy: PollPolicy,
    rand: Callable[[], float] = random.random,
    retry_after_s: float | None = None,
) -> PollPlan:
    """Back off after a failed poll: exponential with full jitter.

    Steps:

    1. The error streak grows by one.
    2. Cap = min(backoff_max_s, backoff_base_s * 2**(errors - 1)); the delay
       is uniform in [0, cap] ("full jitter": sources failing together spread
       out instead of retrying in lockstep), but never below min_interval_s.
    3. A Retry-After (429, 503) is a floor under the delay, up to
       `retry_after_cap_s`.
    The interval is kept: the normal rhythm resumes after the next success.
    """
    errors = state.errors + 1
    cap = min(policy.backoff_max_s, policy.backoff_base_s * 2.0 ** min(errors - 1, _MAX_DOUBLINGS))
    delay = max(policy.min_interval_s, _clamp(rand(), 0.0, 1.0) * cap)
    why = f"error {errors} in a row, backing off up to {cap:.0f}s"
    delay, why = _honour_retry_after(delay, retry_after_s, policy, why)
    return PollPlan(state=replace(state, errors=errors), delay_s=delay, reason=f"{why}: next in {delay:.1f}s")


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date).

    None when absent or unreadable; a date in the past means 0.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


class BreakerStatus(StrEnum):
    CLOSED = "closed"  # calls go through
    OPEN = "open"  # calls are refused until the cool-down passes
    HALF_OPEN = "half_open"  # one probe call decides


@dataclass(frozen=True)
class BreakerPolicy:
    """Per upstream host, with defaults.

    - `failure_threshold` (5): consecutive failures that open the breaker.
    - `cooldown_s` (30): the first open period; it doubles with each trip in
      a row (a failed probe), capped at `max_cooldown_s` (600).
    - `probe_timeout_s` (60): a half-open probe that never reported back is
      presumed lost, and another caller may probe.
    """

    failure_threshold: int = 5
    cooldown_s: float = 30.0
    max_cooldown_s: float = 600.0
    probe_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if not 0 <= self.cooldown_s <= self.max_cooldown_s or self.probe_timeout_s <= 0:
            raise ValueError("0 <= cooldown_s <= max_cooldown_s and probe_timeout_s > 0 are required")

    def cooldown_for(self, trips: int) -> float:
        """The open period after `trips` openings in a row."""
        return min(self.max_cooldown_s, self.cooldown_s * 2.0 ** min(max(0, trips - 1), _MAX_DOUBLINGS))


@dataclass(frozen=True)
class BreakerState:
    status: BreakerStatus = BreakerStatus.CLOSED
    failures: int = 0  # consecutive failures while closed
    trips: int = 0  # openings in a row without a successful probe
    opened_at: float = 0.0
    probe_at: float | None = None  # half-open: when the probe was let through

    def to_dict(self) -> dict[str, object]:
        return {
            "status": self.status.value,
            "failures": self.failures,
            "trips": self.trips,
            "opened_at": self.opened_at,
            "probe_at": self.probe_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> BreakerState:
        probe_at = data.get("probe_at")
        return cls(
            status=BreakerStatus(str(data.get("status", BreakerStatus.CLOSED.value))),
            failures=int(_as_float(data.get("failures", 0), "failures")),
            trips=int(_as_float(data.get("trips", 0), "trips")),
            opened_at=_as_float(data.get("opened_at", 0.0), "opened_at"),
            probe_at=None if probe_at is None else _as_float(probe_at, "probe_at"),
        )


@dataclass(frozen=True)
class BreakerCheck:
    """May the caller call the host now? If not, ask again in `retry_in_s`."""

    allowed: bool
    state: BreakerState
    retry_in_s: float = 0.0


def breaker_check(state: BreakerState, *, now: float, policy: BreakerPolicy) -> BreakerCheck:
    """Decide whether a call to the host may go out.

    - closed: yes.
    - open: no until the cool-down has passed; then the breaker turns
      half-open and this caller is the probe.
    - half-open: no while a probe is out, unless it is older than
      `probe_timeout_s` (lost): then this caller probes.

    When allowed with a changed state, the caller must store it with a
    compare-and-set: of two workers racing for the probe, one wins.
    """
    if state.status is BreakerStatus.CLOSED:
        return BreakerCheck(allowed=True, state=state)
    if state.status is BreakerStatus.OPEN:
        reopen_at = state.opened_at + policy.cooldown_for(state.trips)
        if now < reopen_at:
            return BreakerCheck(allowed=False, state=state, retry_in_s=reopen_at - now)
        probing = replace(state, status=BreakerStatus.HALF_OPEN, probe_at=now)
        return BreakerCheck(allowed=True, state=probing)
    if state.probe_at is not None and now < state.probe_at + policy.probe_timeout_s:
        return BreakerCheck(allowed=False, state=state, retry_in_s=state.probe_at + policy.probe_timeout_s - now)
    return BreakerCheck(allowed=True, state=replace(state, probe_at=now))


def breaker_record(state: BreakerState, *, ok: bool, now: float, policy: BreakerPolicy) -> BreakerState:
    """Fold one call's outcome into the breaker.

    What counts as a failure is the caller's call: connection errors,
    timeouts and 5xx say the host is down; 4xx (auth, 429) do not.

    - closed: a success clears the streak; `failure_threshold` failures in
      a row open it.
    - half-open: the probe's success closes it and forgets the trips; its
      failure opens it again for a doubled cool-down.
    - open: outcomes of calls started before it opened change nothing.
    """
    if state.status is BreakerStatus.CLOSED:
        if ok:
            return replace(state, failures=0) if state.failures else state
        failures = state.failures + 1
        if failures < policy.failure_threshold:
            return replace(state, failures=failures)
        return BreakerState(status=BreakerStatus.OPEN, failures=0, trips=state.trips + 1, opened_at=now)
    if state.status is BreakerStatus.HALF_OPEN:
        if ok:
            return BreakerState()
        return BreakerState(status=BreakerStatus.OPEN, failures=0, trips=state.trips + 1, opened_at=now)
    return state


def _honour_retry_after(delay: float, retry_after_s: float | None, policy: PollPolicy, why: str) -> tuple[float, str]:
    if retry_after_s is None or not math.isfinite(retry_after_s) or retry_after_s <= delay:
        return delay, why
    return min(retry_after_s, max(delay, policy.retry_after_cap_s)), f"{why}, upstream asked to retry after"


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def _as_float(value: object, name: str) -> float:
    # bool is an int: a stored `true` is a bug, not a number.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)
