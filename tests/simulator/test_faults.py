from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from simulator.dataset import Dataset
from simulator.faults import FaultError, Faults, FaultState
from simulator.scenario import ScenarioError, ScenarioPlayer, load_scenario, parse_scenario
from simulator.state import Simulator, Traffic
from tests.simulator.support import contract_errors

ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def events(n: int) -> list[dict[str, object]]:
    ds = Dataset()
    ds.seed_records(n)
    return ds.changes(after=0, limit=n)[0]


def test_a_fault_patch_changes_only_the_named_fields() -> None:
    state = FaultState()
    state.update({"drop_rate": 0.5, "outage": "push"})
    state.update({"latency_ms": 20})
    assert state.faults == Faults(drop_rate=0.5, outage="push", latency_ms=20.0)


@pytest.mark.parametrize(
    ("patch", "field"),
    [({"drop_rate": 2}, "drop_rate"), ({"outage": "sometimes"}, "outage"), ({"nope": 1}, "nope")],
)
def test_an_invalid_fault_patch_is_rejected_and_names_the_field(patch: dict[str, object], field: str) -> None:
    state = FaultState()
    with pytest.raises(FaultError, match=field):
        state.update(patch)
    assert state.faults == Faults()


def test_flapping_alternates_up_and_down_from_when_it_was_switched_on() -> None:
    clock = FakeClock()
    state = FaultState(clock=clock)
    state.update({"flap_up_s": 2, "flap_down_s": 1})
    seen = []
    for t in (0.0, 1.9, 2.0, 2.9, 3.0, 5.5):
        seen.append(state.is_down("push", clock.now + t))
    assert seen == [False, False, True, True, False, True]
    assert not state.is_down("feed", clock.now + 2.5)  # flap_target is push


def test_an_unreachable_upstream_answers_before_checking_credentials() -> None:
    state = FaultState(Faults(outage="feed", auth_fail=True))
    assert state.decide_request(authorized=False).outcome == "outage"
    state.update({"outage_mode": "reset"})
    assert state.decide_request(authorized=True).outcome == "reset"


def test_a_push_outage_leaves_the_feed_up() -> None:
    state = FaultState(Faults(outage="push"))
    assert state.is_down("push") and not state.is_down("feed")
    assert state.decide_request(authorized=True).outcome == "ok"


def test_bad_credentials_win_over_random_faults() -> None:
    state = FaultState(Faults(http_5xx_rate=1.0, http_429_rate=1.0))
    assert state.decide_request(authorized=False).status == 401


def test_request_plans_carry_status_retry_after_and_delay() -> None:
    state = FaultState(Faults(http_429_rate=1.0, retry_after_s=7, latency_ms=150))
    plan = state.decide_request(authorized=True)
    assert (plan.outcome, plan.status, plan.retry_after_s, plan.delay_s) == ("rate_limited", 429, 7, 0.15)
    state.set(Faults(timeout_rate=1.0, timeout_s=12))
    assert state.decide_request(authorized=True).delay_s == 12


def test_push_plan_drops_duplicates_and_breaks_at_the_given_rates() -> None:
    batch = events(200)
    plan = FaultState(Faults(drop_rate=1.0)).plan_push(batch)
    assert plan.send == [] and plan.dropped == 200

    plan = FaultState(Faults(duplicate_rate=1.0)).plan_push(batch)
    assert plan.send == batch == plan.redeliver

    plan = FaultState(Faults(drop_rate=0.25), rng=random.Random(4)).plan_push(batch)
    assert 30 < plan.dropped < 70 and len(plan.send) == 200 - plan.dropped


def test_schema_breaks_are_invalid_per_the_contract() -> None:
    plan = FaultState(Faults(schema_break_rate=1.0), rng=random.Random(1)).plan_push(events(100))
    assert plan.broken == 100
    assert all(contract_errors(e) for e in plan.send)
    assert all(contract_errors(e) == [] for e in events(100))


def test_feed_pages_break_events_only_when_asked() -> None:
    batch = events(20)
    assert FaultState().maybe_break(batch) == batch
    broken = FaultState(Faults(schema_break_rate=1.0)).maybe_break(batch)
    assert all(contract_errors(e) for e in broken)


# -- scenarios -------------------------------------------------------------------


def test_a_scenario_file_in_yaml_or_json_loads_the_same(tmp_path: Path) -> None:
    doc = {
        "name": "demo",
        "repeat": True,
        "phases": [
            {"name": "calm", "duration_s": 5, "mutations_per_s": 3},
            {"name": "storm", "duration_s": 2, "faults": {"outage": "push"}, "delete_rate": 0.5},
        ],
    }
    (tmp_path / "s.json").write_text(json.dumps(doc))
    (tmp_path / "s.yaml").write_text(
        "name: demo\nrepeat: true\nphases:\n"
        "  - {name: calm, duration_s: 5, mutations_per_s: 3}\n"
        "  - name: storm\n    duration_s: 2\n    faults: {outage: push}\n    delete_rate: 0.5\n"
    )
    a, b = load_scenario(tmp_path / "s.json"), load_scenario(tmp_path / "s.yaml")
    assert a == b
    assert a.phases[1].faults == Faults(outage="push") and a.phases[0].faults == Faults()


def test_the_shipped_scenarios_load() -> None:
    shipped = sorted((ROOT / "simulator/scenarios").glob("*.yaml"))
    assert shipped and all(load_scenario(path).phases for path in shipped)


def test_a_bare_list_is_a_list_of_phases() -> None:
    assert parse_scenario([{"name": "x", "duration_s": 1}]).phases[0].name == "x"


@pytest.mark.parametrize(
    "raw",
    [
        {"phases": []},
        {"phases": [{"name": "x", "duration_s": 0}]},
        {"phases": [{"name": "x", "duration_s": 1, "faults": {"drop_rate": 5}}]},
        {"phases": [{"name": "x", "duration_s": 1, "colour": "red"}]},
    ],
)
def test_an_invalid_scenario_is_rejected(raw: object) -> None:
    with pytest.raises(ScenarioError):
        parse_scenario(raw)


def test_the_player_walks_phases_in_order_and_stops_unless_repeating() -> None:
    once = parse_scenario([{"name": "a", "duration_s": 1}, {"name": "b", "duration_s": 2}])
    player = ScenarioPlayer(once, started_at=10.0)
    names = [(p.phase.name if (p := player.position(10.0 + t)) else None) for t in (0, 0.99, 1.0, 2.9, 3.0)]
    assert names == ["a", "a", "b", "b", None]

    looping = ScenarioPlayer(parse_scenario({"repeat": True, "phases": once.phases}), started_at=10.0)
    pos = looping.position(10.0 + 3.5)
    assert pos is not None and (pos.phase.name, pos.loop, pos.started_at) == ("a", 1, 13.0)


def test_the_simulator_enters_each_phase_and_returns_to_base_at_the_end() -> None:
    clock = FakeClock()
    sim = Simulator(traffic=Traffic(mutations_per_s=2), clock=clock)
    sim.start_scenario(
        parse_scenario(
            [
                {"name": "drop", "duration_s": 1, "faults": {"drop_rate": 1}, "mutations_per_s": 10},
                {"name": "silent", "duration_s": 1, "silent_rate": 1},
            ]
        )
    )
    assert sim.faults.faults.drop_rate == 1 and sim.traffic.mutations_per_s == 10
    clock.now += 1
    entered = sim.tick()
    assert entered is not None and entered.phase.name == "silent"
    assert sim.faults.faults == Faults() and sim.traffic == Traffic(2, silent_rate=1)
    changes = sim.generate(1.0)
    assert len(changes) == 2 and all(c.silent for c in changes)
    clock.now += 1
    assert sim.tick() is None and sim.player is None and sim.traffic == Traffic(2)


def test_generate_spreads_fractional_rates_over_ticks() -> None:
    sim = Simulator(traffic=Traffic(mutations_per_s=2.5))
    made = sum(len(sim.generate(0.1)) for _ in range(40))  # 4 s
    assert made == 10
