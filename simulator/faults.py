"""Fault switches of the simulated upstream, and the decisions they imply.

Pure: the random source and the clock are injected, so every decision is
reproducible in a test. `Faults` is an immutable value (one consistent set of
switches); `FaultState` holds the current value and answers two questions:

- what should this feed/snapshot request get (`decide_request`);
- what should this push carry (`plan_push`, `is_down`).

Feed/snapshot faults model an upstream API that misbehaves (docs/contract.md §6:
non-2xx, timeouts, bad JSON). Push faults model a webhook stream that loses,
repeats, reorders or mangles events (docs/contract.md §4). The feed itself never
loses or reorders events: it is the truth that polling recovers from.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec

from simulator.dataset import Event

Rate = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0.0)]
Target = Literal["none", "push", "feed", "all"]
Outcome = Literal["ok", "outage", "reset", "unauthorized", "timeout", "rate_limited", "server_error", "bad_json"]


class FaultError(ValueError):
    """A fault patch that does not validate; the message names the field."""


class Faults(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # -- push (webhook stream) --
    drop_rate: Rate = 0.0  # events never pushed (heartbeats still flow: gaps, not silence)
    duplicate_rate: Rate = 0.0  # events pushed again in the next request
    reorder_window: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0  # pool size shuffled
    # -- push and feed --
    schema_break_rate: Rate = 0.0  # events replaced by a copy invalid per docs/contract.md §4
    outage: Target = "none"  # push: nothing sent, no heartbeat; feed: see outage_mode
    outage_mode: Literal["503", "reset"] = "503"  # feed during outage: 503 or TCP reset
    flap_up_s: NonNegative = 0.0  # both > 0: the target goes up/down on this cycle
    flap_down_s: NonNegative = 0.0
    flap_target: Target = "push"
    # -- feed and snapshot (HTTP) --
    latency_ms: NonNegative = 0.0  # added to every response (and before every push)
    latency_jitter_ms: NonNegative = 0.0
    http_429_rate: Rate = 0.0
    retry_after_s: Annotated[int, msgspec.Meta(ge=0)] = 5
    http_5xx_rate: Rate = 0.0
    timeout_rate: Rate = 0.0
    timeout_s: NonNegative = 30.0  # how long a "timeout" holds the request, then 504
    auth_fail: bool = False  # 401 even with the right token (a rotated credential)
    bad_json_rate: Rate = 0.0  # 200 with a truncated body

    def as_dict(self) -> dict[str, Any]:
        return msgspec.structs.asdict(self)

    def patched(self, patch: Mapping[str, Any]) -> Faults:
        """A copy with the fields in `patch` changed. Raises FaultError."""
        return parse_faults({**self.as_dict(), **patch})


def parse_faults(raw: object) -> Faults:
    try:
        return msgspec.convert(raw, Faults)
    except msgspec.ValidationError as exc:
        raise FaultError(str(exc)) from exc


@dataclass(frozen=True, slots=True)
class RequestPlan:
    """What a feed/snapshot request gets: wait `delay_s`, then `outcome`."""

    outcome: Outcome
    delay_s: float = 0.0
    status: int = 200
    retry_after_s: int | None = None


@dataclass(slots=True)
class PushPlan:
    """Events to send now, copies to send in the next request, and counts."""

    send: list[Event] = field(default_factory=list)
    redeliver: list[Event] = field(default_factory=list)
    dropped: int = 0
    duplicated: int = 0
    broken: int = 0


Breaker = Callable[[Event], Event]

# Each breaks docs/contract.md §4 in one way the receiver must reject (422, whole batch).
# A real-shaped profile brings its own (simulator/profiles).
CONTRACT_BREAKS: tuple[Breaker, ...] = (
    lambda e: {k: v for k, v in e.items() if k != "key"},  # missing key
    lambda e: {**e, "version": str(e.get("version", ""))},  # version not an integer
    lambda e: {**e, "type": "update"},  # unknown type
    lambda e: {**e, "id": ""},  # empty id
    lambda e: {**e, "type": "upsert", "data": ["not", "an", "object"]},  # data not an object
)


class FaultState:
    """The current faults plus the random source and clock that apply them."""

    def __init__(
        self,
        faults: Faults | None = None,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.rng = rng or random.Random(0)
        self._faults = Faults()
        self._flap_since = clock()
        self.set(faults or Faults())

    @property
    def faults(self) -> Faults:
        return self._faults

    def set(self, faults: Faults) -> Faults:
        with self._lock:
            old = self._faults
            if (faults.flap_up_s, faults.flap_down_s) != (old.flap_up_s, old.flap_down_s):
                # A new flapping cycle starts "up" now, so a test can predict it.
                self._flap_since = self._clock()
            self._faults = faults
            return faults

    def update(self, patch: Mapping[str, Any]) -> Faults:
        """Apply a JSON patch of fault fields. Raises FaultError."""
        return self.set(self._faults.patched(patch))

    def clear(self) -> Faults:
        return self.set(Faults())

    # -- decisions -------------------------------------------------------------

    def chance(self, rate: float) -> bool:
        return rate > 0.0 and self.rng.random() < rate

    def is_down(self, target: Literal["push", "feed"], now: float | None = None) -> bool:
        """True while an outage or the down half of a flapping cycle hits `target`."""
        f = self._faults
        if f.outage in (target, "all"):
            return True
        if f.flap_target in (target, "all") and f.flap_up_s > 0 and f.flap_down_s > 0:
            t = (self._clock() if now is None else now) - self._flap_since
            return t % (f.flap_up_s + f.flap_down_s) >= f.flap_up_s
        return False

    def latency_s(self) -> float:
        f = self._faults
        jitter = self.rng.uniform(0.0, f.latency_jitter_ms) if f.latency_jitter_ms else 0.0
        return (f.latency_ms + jitter) / 1000.0

    def decide_request(self, *, authorized: bool, now: float | None = None) -> RequestPlan:
        """Steps, first match wins: outage/flap down, 401, timeout, 429, 5xx, bad JSON, ok.

        An unreachable host answers before it checks credentials; a reachable
        one rejects a bad credential before doing any work.
        """
        f = self._faults
        delay = self.latency_s()
        if self.is_down("feed", now):
            return RequestPlan("reset" if f.outage_mode == "reset" else "outage", delay, 503)
        if f.auth_fail or not authorized:
            return RequestPlan("unauthorized", delay, 401)
        if self.chance(f.timeout_rate):
            return RequestPlan("timeout", delay + f.timeout_s, 504)
        if self.chance(f.http_429_rate):
            return RequestPlan("rate_limited", delay, 429, f.retry_after_s)
        if self.chance(f.http_5xx_rate):
            return RequestPlan("server_error", delay, self.rng.choice((500, 502, 503)))
        if self.chance(f.bad_json_rate):
            return RequestPlan("bad_json", delay)
        return RequestPlan("ok", delay)

    def break_event(self, event: Event, breaks: Sequence[Breaker] = CONTRACT_BREAKS) -> Event:
        return self.rng.choice(breaks)(event)

    def maybe_break(self, events: Iterable[Event], breaks: Sequence[Breaker] = CONTRACT_BREAKS) -> list[Event]:
        """Feed pages: each item replaced by a broken copy at schema_break_rate."""
        rate = self._faults.schema_break_rate
        return [self.break_event(e, breaks) if self.chance(rate) else e for e in events]

    def plan_push(self, events: Iterable[Event], breaks: Sequence[Breaker] = CONTRACT_BREAKS) -> PushPlan:
        """Per event: drop, else maybe break, then maybe schedule a duplicate."""
        f = self._faults
        plan = PushPlan()
        for event in events:
            if self.chance(f.drop_rate):
                plan.dropped += 1
                continue
            if self.chance(f.schema_break_rate):
                event = self.break_event(event, breaks)
                plan.broken += 1
            plan.send.append(event)
            if self.chance(f.duplicate_rate):
                plan.redeliver.append(event)
                plan.duplicated += 1
        return plan
