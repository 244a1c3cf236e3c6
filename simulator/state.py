"""One simulated upstream: dataset, faults, traffic, scenario and counters.

The server, the pusher and the runner's clock task all work on one
`Simulator`; tests reach the same object through the thread handle. No I/O
here: the runner decides when to call `tick` and `generate`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from simulator.dataset import Change, Dataset
from simulator.faults import FaultState
from simulator.profiles import build_profile
from simulator.profiles.base import Profile
from simulator.scenario import PhaseAt, Scenario, ScenarioPlayer

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Traffic:
    """How fast the truth changes, and how."""

    mutations_per_s: float = 2.0
    silent_rate: float = 0.0  # fraction of mutations that emit no event
    delete_rate: float = 0.0  # fraction of mutations that delete

    def __post_init__(self) -> None:
        if self.mutations_per_s < 0:
            raise ValueError("mutations_per_s must be >= 0")
        for name in ("silent_rate", "delete_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within 0..1")


@dataclass(slots=True)
class PushStats:
    requests: int = 0
    ok: int = 0
    failed: int = 0
    events_sent: int = 0  # includes duplicates and broken copies
    heartbeats: int = 0  # keep-alives sent: docs/contract.md §4 heartbeats, GitHub pings
    dropped: int = 0  # by drop_rate
    lost_down: int = 0  # not sent because push was down (outage, flapping)
    duplicated: int = 0
    broken: int = 0
    reordered: int = 0  # events delivered out of a shuffled pool
    last_status: int | None = None
    last_error: str | None = None


class Simulator:
    def __init__(
        self,
        *,
        seed: int = 0,
        token: str | None = None,
        key_space: int = 1000,
        traffic: Traffic | None = None,
        run_id: str = "sim",
        clock: Callable[[], float] = time.monotonic,
        profile: str = "beastflow",
        profile_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.seed = seed
        self.token = token
        self.run_id = run_id
        self.clock = clock
        self.dataset = Dataset(seed=seed, key_space=key_space, id_prefix=f"evt_{run_id}")
        self.faults = FaultState(rng=random.Random(f"faults:{seed}"), clock=clock)
        self.base_traffic = traffic or Traffic()
        self.traffic = self.base_traffic
        self.requests: Counter[str] = Counter()  # "<endpoint>.<outcome>"
        self.push = PushStats()
        self.player: ScenarioPlayer | None = None
        self.phase: PhaseAt | None = None
        self.last_scenario: str | None = None
        self._rng = random.Random(f"traffic:{seed}")
        self._owed = 0.0  # fractional mutations carried between ticks
        self._lock = threading.RLock()
        # Last: a profile may read the dataset and seed when it is built.
        self.profile: Profile = build_profile(profile, self, profile_options or {})

    # -- traffic ---------------------------------------------------------------

    def mutate(self, *, count: int = 1, silent: bool = False, delete: bool = False) -> list[Change]:
        return [self.dataset.mutate_random(delete=delete, silent=silent) for _ in range(max(count, 0))]

    def generate(self, dt_s: float) -> list[Change]:
        """The mutations owed for `dt_s` seconds at the current traffic."""
        with self._lock:
            t = self.traffic
            self._owed += t.mutations_per_s * max(dt_s, 0.0)
            due = int(self._owed)
            self._owed -= due
            return [
                self.dataset.mutate_random(
                    delete=self._rng.random() < t.delete_rate,
                    silent=self._rng.random() < t.silent_rate,
                )
                for _ in range(due)
            ]

    def set_traffic(self, **fields: float) -> Traffic:
        """Change the base traffic (and the current one, until the next phase)."""
        with self._lock:
            self.base_traffic = replace(self.base_traffic, **fields)
            self.traffic = replace(self.traffic, **fields)
            return self.traffic

    # -- scenario --------------------------------------------------------------

    def start_scenario(self, scenario: Scenario) -> None:
        with self._lock:
            self.player = ScenarioPlayer(scenario, started_at=self.clock())
            self.phase = None
            self.last_scenario = scenario.name
            self.tick()

    def stop_scenario(self) -> None:
        """Back to the base traffic and no faults."""
        with self._lock:
            if self.player is not None:
                logger.info("scenario %s stopped", self.player.scenario.name)
            self.player = None
            self.phase = None
            self.traffic = self.base_traffic
            self.faults.clear()

    def tick(self) -> PhaseAt | None:
        """Enter the phase in force now; returns it when it just started."""
        with self._lock:
            if self.player is None:
                return None
            pos = self.player.position(self.clock())
            if pos is None:
                logger.info("scenario %s finished", self.player.scenario.name)
                self.stop_scenario()
                return None
            if self.phase is not None and (pos.index, pos.loop) == (
                self.phase.index,
                self.phase.loop,
            ):
                return None
            self.phase = pos
            p = pos.phase
            self.faults.set(p.faults)
            rate = self.base_traffic.mutations_per_s if p.mutations_per_s is None else p.mutations_per_s
            self.traffic = Traffic(rate, p.silent_rate, p.delete_rate)
            logger.info("scenario %s: phase %s (%d)", self.player.scenario.name, p.name, pos.index)
            return pos

    # -- housekeeping ----------------------------------------------------------

    def count(self, name: str) -> None:
        with self._lock:  # describe() copies the counter from another thread
            self.requests[name] += 1

    def reset(self, *, dataset: bool = False) -> None:
        """Stop the scenario, clear faults and counters; `dataset` also empties
        the data and starts a new generation (seq from 1, fresh event ids)."""
        with self._lock:
            self.stop_scenario()
            self.requests.clear()
            self.push = PushStats()
            self.profile.reset()
            if dataset:
                self.dataset.reset()

    def describe(self) -> dict[str, Any]:
        """Everything `GET /_control/state` shows."""
        with self._lock:
            scenario: dict[str, Any] | None = None
            if self.player is not None and self.phase is not None:
                scenario = {
                    "name": self.player.scenario.name,
                    "phase": self.phase.phase.name,
                    "index": self.phase.index,
                    "loop": self.phase.loop,
                    "phase_elapsed_s": round(self.clock() - self.phase.started_at, 3),
                }
            ds = self.dataset
            return {
                "run_id": self.run_id,
                "profile": self.profile.settings(),
                "faults": self.faults.faults.as_dict(),
                "traffic": asdict(self.traffic),
                "base_traffic": asdict(self.base_traffic),
                "scenario": scenario,
                "last_scenario": self.last_scenario,
                "dataset": {
                    "records": len(ds),
                    "head_seq": ds.head_seq,
                    "silent_changes": ds.silent_changes,
                    "generation": ds.generation,
                },
                "requests": dict(self.requests),
                "push": asdict(self.push),
            }
