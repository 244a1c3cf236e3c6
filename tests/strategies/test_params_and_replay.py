"""Version parameters (validation, diff) and the offline evaluator on the simulator's scenarios."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.scenario import load_scenario
from strategies.params import StrategyParams, diff, merged, validate_params
from strategies.replay import evaluate, history, summarize

SCENARIOS = Path(__file__).resolve().parents[2] / "simulator" / "scenarios"
DEMO = {"fail_threshold": 3, "min_dwell_s": 15, "max_dwell_s": 60, "flap_window_s": 120, "validation_window_s": 10}


def _params(**hysteresis: float) -> StrategyParams:
    return StrategyParams.model_validate({"hysteresis": {**DEMO, **hysteresis}, "poll": {"max_interval_s": 10}})


def test_params_are_validated_by_the_source_schemas_with_field_paths() -> None:
    params, errors = validate_params({"hysteresis": {"fail_threshold": 0, "min_dwell_s": 50, "max_dwell_s": 10}})
    assert params is None
    assert {e["field"] for e in errors} >= {"params.hysteresis.fail_threshold"}
    _, errors = validate_params({"hysteresis": {"surprise": 1}})
    assert errors[0]["field"] == "params.hysteresis.surprise"
    _, errors = validate_params(["not", "an", "object"])
    assert errors == [{"field": "params", "message": "an object is required"}]


def test_a_stored_version_holds_every_default_and_the_diff_names_each_changed_field() -> None:
    old = StrategyParams().stored()
    new = StrategyParams.model_validate(merged(old, {"hysteresis": {"fail_threshold": 2}})).stored()
    assert old["hysteresis"]["min_dwell_s"] == 10.0
    assert diff(old, new) == [{"field": "hysteresis.fail_threshold", "old": 3, "new": 2}]
    assert diff(new, new) == []


def test_the_outage_scenario_is_detected_and_the_steady_one_never_switches() -> None:
    outage = load_scenario(SCENARIOS / "demo-outage.yaml")
    steady = load_scenario(SCENARIOS / "demo-steady.yaml")
    # when
    out = evaluate(history(outage, seed=1, loops=2), _params())
    calm = evaluate(history(steady, seed=1, loops=2), _params())
    # then
    assert out.detect_s and all(5 <= d <= 15 for d in out.detect_s)
    assert out.switches >= 4 and out.requests > 0
    assert calm.switches == 0 and calm.undetected == 2  # the 5 s blip is ridden out, twice


def test_the_same_history_and_seed_measure_the_same_and_another_seed_differs() -> None:
    flaky = load_scenario(SCENARIOS / "demo-flaky.yaml")
    a = evaluate(history(flaky, seed=3, loops=2), _params())
    b = evaluate(history(flaky, seed=3, loops=2), _params())
    c = history(flaky, seed=4, loops=2)
    assert a == b
    assert history(flaky, seed=3, loops=2) != c


def test_a_lower_fail_threshold_detects_the_outage_sooner() -> None:
    outage = load_scenario(SCENARIOS / "demo-outage.yaml")
    runs = [history(outage, seed=s, loops=2) for s in range(4)]
    slow = summarize([evaluate(h, _params(fail_threshold=5)) for h in runs])
    fast = summarize([evaluate(h, _params(fail_threshold=1)) for h in runs])
    assert fast.mean_detect_s is not None and slow.mean_detect_s is not None
    assert fast.mean_detect_s < slow.mean_detect_s


def test_a_metric_the_replay_does_not_measure_is_refused() -> None:
    outage = load_scenario(SCENARIOS / "demo-outage.yaml")
    metrics = evaluate(history(outage, seed=1), _params())
    with pytest.raises(ValueError):
        metrics.value("healing_success")
