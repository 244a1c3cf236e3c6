"""The tuner: the fastest parameters that stay within the flap budget, on the same histories."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from engines.hysteresis import HysteresisPolicy
from engines.modes import Verdict
from simulator.scenario import load_scenario
from strategies.params import StrategyParams
from strategies.replay import history
from strategies.tuner import Judged, replay_verdicts, tune, tune_verdicts

SCENARIOS = Path(__file__).resolve().parents[2] / "simulator" / "scenarios"
DEMO = {"fail_threshold": 3, "min_dwell_s": 15, "max_dwell_s": 60, "flap_window_s": 120, "validation_window_s": 10}


def _histories() -> list:
    return [
        history(load_scenario(SCENARIOS / f"{name}.yaml"), seed=seed, loops=2)
        for name in ("demo-steady", "demo-outage", "demo-flaky")
        for seed in range(2)
    ]


def test_the_proposal_is_within_budget_and_no_slower_than_the_baseline() -> None:
    # given
    base = StrategyParams.model_validate({"hysteresis": DEMO, "poll": {"max_interval_s": 10}})
    # when
    proposal = tune(_histories(), base, grid={"fail_threshold": (1, 2, 3, 5), "min_dwell_s": (5, 15, 30)})
    # then
    assert proposal.best is not None
    assert proposal.best.summary.switches_per_hour <= proposal.budget_per_hour + 1e-9
    assert proposal.best.summary.flap_holds <= proposal.baseline.summary.flap_holds
    assert proposal.best.away_s <= proposal.baseline.away_s
    infeasible = [c for c in proposal.tried if not c.feasible]
    assert all(c.why_not for c in infeasible)


def test_an_impossible_budget_proposes_nothing() -> None:
    base = StrategyParams.model_validate({"hysteresis": DEMO})
    outage = [history(load_scenario(SCENARIOS / "demo-outage.yaml"), seed=0)]
    proposal = tune(outage, base, grid={"fail_threshold": (1, 2)}, budget_per_hour=0.0)
    assert proposal.best is None and not proposal.improves


verdicts = st.lists(st.tuples(st.sampled_from([Verdict.GOOD, Verdict.BAD]), st.booleans()), min_size=2, max_size=300)


@settings(max_examples=60, deadline=None)
@given(trace=verdicts, budget=st.floats(0, 200))
def test_a_proposal_from_recorded_verdicts_keeps_its_switches_within_the_budget(
    trace: list[tuple[Verdict, bool]], budget: float
) -> None:
    # given: one judgement every 2 s
    judged = [Judged(at=2.0 * i, verdict=v, silent=s) for i, (v, s) in enumerate(trace)]
    # when
    changes = tune_verdicts(judged, DEMO, budget_per_hour=budget)
    # then
    if changes is not None:
        policy = HysteresisPolicy.from_config({**DEMO, **changes, "max_dwell_s": max(60, changes["min_dwell_s"])})
        switches, holds, _ = replay_verdicts(judged, policy)
        hours = (judged[-1].at - judged[0].at) / 3600
        assert holds == 0 and switches / hours <= budget + 1e-9


def test_the_smallest_threshold_that_fits_is_proposed() -> None:
    # given: a lone bad verdict every minute, for an hour
    judged = [Judged(at=float(t), verdict=Verdict.BAD if t % 60 == 0 else Verdict.GOOD) for t in range(0, 3600, 2)]
    # when: no switch allowed
    changes = tune_verdicts(judged, DEMO, budget_per_hour=0.0)
    # then: 1 would switch on each lone bad verdict, 2 never does
    assert changes == {"fail_threshold": 2, "min_dwell_s": 0}
