"""When `make up`'s launcher restarts a dead process, and when it gives up (pure: no I/O, no clock).

A process of `up` (web, worker, beat, the demo's simulators) that exits on
its own is restarted after a delay that doubles with each death inside the
window (0.5 s, 1 s, 2 s, 4 s with the defaults), so a process that dies once
(killed, OOM) is back at once, and one that cannot start does not spin the
CPU. The Nth death of the same process within the window means restarting
will not help (a bad setting, a port taken, a database gone for good): the
launcher gives up, stops everything and exits 1, so a person or an outer
supervisor sees it. Deaths older than the window are forgotten, so a
process that dies once a day is restarted forever.

Settings (environment, read by `RestartPolicy.from_env`):

  BEASTFLOW_RESTART_MAX        5     deaths within the window that make it give up
  BEASTFLOW_RESTART_WINDOW_S   60    the window, seconds
  BEASTFLOW_RESTART_DELAY_S    0.5   the first restart's delay, seconds
  BEASTFLOW_RESTART_MAX_DELAY_S 30   the longest delay, seconds
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RestartPolicy:
    max_crashes: int = 5
    window_s: float = 60.0
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_crashes < 1:
            raise ValueError("BEASTFLOW_RESTART_MAX must be at least 1")
        if self.window_s <= 0 or self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("restart window must be > 0 and 0 <= delay <= max delay")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RestartPolicy:
        source = os.environ if env is None else env
        default = cls()

        def number(name: str, fallback: float) -> float:
            raw = source.get(name, "").strip()
            if not raw:
                return fallback
            try:
                return float(raw)
            except ValueError:
                raise ValueError(f"{name} must be a number, got {raw!r}") from None

        return cls(
            max_crashes=int(number("BEASTFLOW_RESTART_MAX", default.max_crashes)),
            window_s=number("BEASTFLOW_RESTART_WINDOW_S", default.window_s),
            base_delay_s=number("BEASTFLOW_RESTART_DELAY_S", default.base_delay_s),
            max_delay_s=number("BEASTFLOW_RESTART_MAX_DELAY_S", default.max_delay_s),
        )


@dataclass(frozen=True)
class Decision:
    give_up: bool
    delay_s: float  # before the restart; 0 when giving up
    crashes: tuple[float, ...]  # the deaths still inside the window, this one last: the next call's `earlier`


def on_death(earlier: Sequence[float], *, now: float, policy: RestartPolicy) -> Decision:
    """What to do about a process that died at `now`, given its earlier deaths (monotonic seconds).

    Steps:
    1. forget the deaths older than the window, add this one;
    2. that many deaths reach `max_crashes`: give up;
    3. else restart after `base_delay_s` doubled for every other death in the
       window, at most `max_delay_s`.
    """
    recent = (*(t for t in earlier if now - t < policy.window_s), now)
    if len(recent) >= policy.max_crashes:
        return Decision(give_up=True, delay_s=0.0, crashes=recent)
    # Capped exponent: a large BEASTFLOW_RESTART_MAX must not overflow a float.
    delay = min(policy.max_delay_s, policy.base_delay_s * 2 ** min(len(recent) - 1, 32))
    return Decision(give_up=False, delay_s=delay, crashes=recent)
