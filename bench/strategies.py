"""Adaptation strategies on the simulator's scenarios: the test's error rates and one tuned parameter set.

`.venv/bin/python bench/strategies.py [--runs N]`. Pure Python, no services:
every figure comes from the offline evaluator (strategies/replay.py), which
replays the simulator's scenarios (simulator/scenarios: demo-steady,
demo-outage, demo-flaky; Poisson traffic from a seed) through the monitor's
own decisions (engines.health, engines.hysteresis, engines.polling_policy).
Prints:

1. A/A false-positive rate: experiments whose two arms run the same version,
   checked after every outcome (as the service does), declared significant
   by the mixture SPRT at alpha 0.05. Outcomes are drawn from a pool of
   simulated runs (one outcome per run: the mean time to detect its outages,
   and switches per source-hour), so their shape is the simulator's, not a
   normal's.
2. A/B power: the same with a treatment that really differs (fail_threshold
   3 -> 2: a stated effect, measured on the pools), at most `--per-arm`
   outcomes per arm; and the textbook case, 0.5 standard deviation on a
   normal outcome within 150 per arm.
3. One tuned parameter set (strategies.tuner over fail_threshold x
   min_dwell_s within the flap budget) and its measured gain: every metric
   before and after on the same scenarios and seeds, and on seeds it was not
   tuned on.

Writes .beastflow/bench/strategies.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator.scenario import load_scenario  # noqa: E402
from strategies.params import StrategyParams, merged  # noqa: E402
from strategies.replay import History, evaluate, history, summarize  # noqa: E402
from strategies.sequential import SequentialTest  # noqa: E402
from strategies.tuner import tune  # noqa: E402

OUT = ROOT / ".beastflow" / "bench" / "strategies.json"
SCENARIOS = ("demo-steady", "demo-outage", "demo-flaky")
# The demo sources' parameters (engines/demo.py): what the scenarios were written for.
BASE = {
    "hysteresis": {
        "fail_threshold": 3,
        "recover_threshold": 5,
        "min_dwell_s": 15,
        "max_dwell_s": 60,
        "flap_switches": 4,
        "flap_window_s": 120,
        "validation_window_s": 10,
    },
    "poll": {"min_interval_s": 1, "max_interval_s": 10},
}


def _histories(seeds: range, loops: int = 2) -> list[History]:
    folder = ROOT / "simulator" / "scenarios"
    return [history(load_scenario(folder / f"{n}.yaml"), seed=s, loops=loops) for n in SCENARIOS for s in seeds]


def _pool(params: StrategyParams, metric: str, runs: int, seed0: int) -> list[float]:
    """One outcome per simulated run of the outage and flaky scenarios (the ones with outages to detect)."""
    folder = ROOT / "simulator" / "scenarios"
    scenarios = [load_scenario(folder / f"{n}.yaml") for n in ("demo-outage", "demo-flaky")]
    values = []
    for i in range(runs):
        value = evaluate(history(scenarios[i % 2], seed=seed0 + i, loops=1), params).value(metric)
        if value is not None:
            values.append(value)
    return values


def _experiments(
    control: list[float], treatment: list[float], *, n: int, per_arm: int, seed: int
) -> tuple[float, list[int]]:
    """Share of `n` experiments declared significant, and the outcomes each significant one took."""
    rng = random.Random(seed)
    hits, took = 0, []
    for _ in range(n):
        test = SequentialTest()
        for _ in range(per_arm):
            test.add(treatment=False, value=rng.choice(control))
            test.add(treatment=True, value=rng.choice(treatment))
        if test.result().significant:
            hits += 1
            took.append(test.decided_at or 0)
    return hits / n, took


def _normal_power(*, n: int, per_arm: int, effect_sd: float, seed: int) -> float:
    rng = random.Random(seed)
    hits = 0
    for _ in range(n):
        test = SequentialTest()
        for _ in range(per_arm):
            test.add(treatment=False, value=rng.gauss(0, 1))
            test.add(treatment=True, value=rng.gauss(effect_sd, 1))
        hits += test.result().significant
    return hits / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="simulated experiments per figure")
    parser.add_argument("--pool", type=int, default=1200, help="simulated runs per version in each outcome pool")
    parser.add_argument("--per-arm", type=int, default=100, help="outcomes per arm, at most")
    args = parser.parse_args()
    started = time.perf_counter()
    base = StrategyParams.model_validate(BASE)
    twitchy = StrategyParams.model_validate(merged(base.stored(), {"hysteresis": {"fail_threshold": 2}}))
    report: dict[str, object] = {"scenarios": SCENARIOS, "runs": args.runs, "per_arm": args.per_arm}

    print(f"strategies bench: {args.runs} simulated experiments per figure, up to {args.per_arm} outcomes per arm")
    print("\n1. A/A false-positive rate (alpha 0.05, the mixture SPRT looked at after every outcome)")
    aa: dict[str, float] = {}
    pools: dict[str, list[float]] = {}
    for metric in ("time_to_detect", "switches_per_hour"):
        pools[metric] = _pool(base, metric, args.pool, seed0=10_000)
        rate, _ = _experiments(pools[metric], pools[metric], n=args.runs, per_arm=args.per_arm, seed=1)
        aa[metric] = rate
        spread = statistics.pstdev(pools[metric])
        print(
            f"   {metric:<18} pool of {len(pools[metric])} runs (mean {statistics.fmean(pools[metric]):.2f}, "
            f"sd {spread:.2f}): {rate:.1%} false positives"
        )
    report["aa_false_positive_rate"] = aa

    print("\n2. A/B power")
    treated = _pool(twitchy, "time_to_detect", args.pool, seed0=20_000)
    control = pools["time_to_detect"]
    effect = statistics.fmean(treated) - statistics.fmean(control)
    pooled_sd = statistics.pstdev(control + treated)
    power, took = _experiments(control, treated, n=args.runs, per_arm=args.per_arm, seed=2)
    median_took = statistics.median(took) if took else None
    print(
        f"   time_to_detect, fail_threshold 3 -> 2: effect {effect:+.2f} s ({effect / pooled_sd:+.2f} sd): "
        f"power {power:.1%} within {args.per_arm} per arm, median {median_took} outcomes (both arms) to decide"
    )
    normal = _normal_power(n=args.runs, per_arm=150, effect_sd=0.5, seed=3)
    print(f"   normal outcome, effect 0.5 sd: power {normal:.1%} within 150 per arm")
    report["ab_power"] = {
        "time_to_detect_fail_threshold_3_to_2": {
            "effect_s": effect,
            "effect_sd": effect / pooled_sd,
            "power": power,
            "median_outcomes_to_decide": median_took,
        },
        "normal_0_5_sd_150_per_arm": normal,
    }

    print("\n3. Tuned parameters (fail_threshold x min_dwell_s, within the flap budget)")
    tuned_on = _histories(range(5))
    proposal = tune(tuned_on, base)
    held_out = _histories(range(100, 105))
    before_held = summarize([evaluate(h, base) for h in held_out])
    assert proposal.best is not None
    after_held = summarize([evaluate(h, proposal.best.params) for h in held_out])
    pooled = proposal.budget_per_hour
    print(f"   budget: per scenario, the demo parameters' own switches per source-hour ({pooled:.1f} pooled)")
    print(f"   {len(proposal.tried)} candidates, {sum(c.feasible for c in proposal.tried)} within budget")
    print(f"   proposal: {proposal.best.changes} (from fail_threshold 3, min_dwell_s 15)")
    rows = [
        ("same scenarios, seeds 0-4", proposal.baseline.summary.as_dict(), proposal.best.summary.as_dict()),
        ("held-out seeds 100-104", before_held.as_dict(), after_held.as_dict()),
    ]
    for label, before, after in rows:
        print(f"   {label}:")
        for name in (
            "mean_detect_s",
            "mean_back_s",
            "switches_per_hour",
            "flap_holds",
            "missed_in_event",
            "requests_per_hour",
        ):
            print(f"      {name:<18} {before[name]!s:>8} -> {after[name]!s:>8}")
    report["tuned"] = {
        "changes": proposal.best.changes,
        "budget_per_hour": proposal.budget_per_hour,
        "same_seeds": {"before": rows[0][1], "after": rows[0][2]},
        "held_out_seeds": {"before": rows[1][1], "after": rows[1][2]},
    }
    report["seconds"] = round(time.perf_counter() - started, 1)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2, default=str))
    print(f"\n{report['seconds']} s; written to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
