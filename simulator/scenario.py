"""Scenario files: phases of faults and traffic played in order, optionally looping.

A scenario file is YAML or JSON, either a list of phases or a mapping:

    name: outage-and-back
    repeat: false            # true: loop forever
    phases:
      - name: healthy
        duration_s: 10
        mutations_per_s: 5   # omitted: the simulator's base rate
        delete_rate: 0.1     # fraction of mutations that delete a record
        silent_rate: 0.0     # fraction that change the truth without an event
        faults: {}           # a full fault set (Faults fields); omitted = no faults
      - name: push-outage
        duration_s: 20
        faults: {outage: push}

Each phase's faults replace the previous phase's (they do not accumulate), so
a phase reads the same wherever it sits in the file. Pure: the player takes
`now` as an argument.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import msgspec
import yaml

from simulator.faults import Faults, Rate

# The scenarios that ship with the simulator (the demo's, the strategy replays'), found by name.
SCENARIOS_DIR = Path(__file__).resolve().parent / "scenarios"


class ScenarioError(ValueError):
    """A scenario that does not parse or validate; the message says where."""


class Phase(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: str
    duration_s: Annotated[float, msgspec.Meta(gt=0.0)]
    faults: Faults = msgspec.field(default_factory=Faults)
    mutations_per_s: Annotated[float, msgspec.Meta(ge=0.0)] | None = None
    silent_rate: Rate = 0.0
    delete_rate: Rate = 0.0


class Scenario(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    phases: Annotated[list[Phase], msgspec.Meta(min_length=1)]
    name: str = "scenario"
    repeat: bool = False

    @property
    def cycle_s(self) -> float:
        return sum(p.duration_s for p in self.phases)


def parse_scenario(raw: object) -> Scenario:
    """Build a Scenario from decoded YAML/JSON (a mapping or a bare list of phases)."""
    if isinstance(raw, list):
        raw = {"phases": raw}
    try:
        return msgspec.convert(raw, Scenario)
    except msgspec.ValidationError as exc:
        raise ScenarioError(str(exc)) from exc


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        raw: object = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    return parse_scenario(raw)


@dataclass(frozen=True, slots=True)
class PhaseAt:
    """Where a running scenario is: phase `index` of loop `loop`, since `started_at`."""

    index: int
    loop: int
    phase: Phase
    started_at: float


class ScenarioPlayer:
    """Maps a moment to the phase in force; None once a non-repeating scenario ended."""

    def __init__(self, scenario: Scenario, *, started_at: float) -> None:
        self.scenario = scenario
        self.started_at = started_at

    def position(self, now: float) -> PhaseAt | None:
        elapsed = max(0.0, now - self.started_at)
        cycle = self.scenario.cycle_s
        loop = int(elapsed // cycle)
        if loop > 0 and not self.scenario.repeat:
            return None
        offset = elapsed - loop * cycle
        begin = self.started_at + loop * cycle
        for index, phase in enumerate(self.scenario.phases):
            if offset < phase.duration_s:
                return PhaseAt(index, loop, phase, begin)
            offset -= phase.duration_s
            begin += phase.duration_s
        # Float rounding at the very end of a cycle: treat as the last phase.
        last = len(self.scenario.phases) - 1
        return PhaseAt(last, loop, self.scenario.phases[last], begin)
