"""The classifier that learns from confirmations, and the Thompson-sampling strategy choice. No database."""

from __future__ import annotations

import random
from typing import Any

from healing.bandit import Arm, choose
from healing.learning import MIN_CASES, NaiveBayes, evaluate, train
from healing.strategies import STRATEGIES, candidates
from tests.healing.scenario_contexts import CASES


def _noisy_cases(n: int, seed: int = 1) -> list[tuple[dict[str, Any], str]]:
    """Confirmed cases around the recorded scenario contexts, with facts dropped or perturbed at random."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        _, features, label = CASES[i % len(CASES)]
        noisy = {k: v for k, v in features.items() if k == "kind" or rng.random() > 0.3}
        if rng.random() < 0.2:
            noisy["recent_switches"] = rng.randint(0, 6)
        out.append((noisy, label))
    return out


def test_the_learner_predicts_confirmed_labels_on_held_out_cases() -> None:
    # when
    evaluation = evaluate(_noisy_cases(200), held_out_share=0.3, seed=3)
    # then
    assert evaluation.held_out == 60
    assert evaluation.accuracy is not None and evaluation.accuracy >= 0.85
    print(f"\nlearner held-out accuracy (synthetic around recorded contexts): {evaluation.accuracy:.1%}")


def test_the_learner_learns_a_correction_the_rules_do_not_know() -> None:
    # given: operators keep correcting silent streams with many switches... to upstream_timeout
    model = NaiveBayes()
    for _ in range(10):
        model.learn({"kind": "stream_silent", "recent_switches": 9}, "upstream_timeout")
        model.learn({"kind": "stream_silent", "recent_switches": 0}, "stream_silent")
    # then
    assert model.predict({"kind": "stream_silent", "recent_switches": 9}) == "upstream_timeout"
    assert model.predict({"kind": "stream_silent", "recent_switches": 0}) == "stream_silent"


def test_the_learner_is_not_consulted_below_its_minimum_cases() -> None:
    model = train([({"kind": "rate_limited"}, "rate_limited")] * (MIN_CASES - 1))
    assert model.weight() == 0.0
    model.learn({"kind": "rate_limited"}, "rate_limited")
    assert model.weight() > 0.0


def test_thompson_sampling_mostly_picks_what_worked_and_still_explores() -> None:
    # given
    arms = {"good": Arm(successes=40, failures=2), "bad": Arm(successes=2, failures=40), "new": Arm()}
    rng = random.Random(7)
    # when
    picks = [choose(["bad", "good", "new"], arms, rng) for _ in range(1000)]
    # then
    assert picks.count("good") > 900
    assert picks.count("new") > 0
    assert picks.count("bad") < 20


def test_the_choice_is_reproducible_with_a_seed() -> None:
    arms = {"a": Arm(1, 1), "b": Arm(1, 1)}
    first = [choose(["a", "b"], arms, random.Random(11)) for _ in range(5)]
    again = [choose(["a", "b"], arms, random.Random(11)) for _ in range(5)]
    assert first == again


def test_every_category_has_a_strategy_and_risky_ones_need_approval() -> None:
    from healing.schemas import RCACategory

    for category in RCACategory:
        assert candidates(category.value, {"source_id": 1, "source_mode": "event"}), category
    for strategy in STRATEGIES:
        assert strategy.needs_approval == (strategy.risk != "low")
    risky = {s.name for s in STRATEGIES if s.needs_approval}
    assert {"pause_source", "rotate_webhook_secret", "notify_operator"} <= risky


def test_auth_failures_get_no_automatic_strategy() -> None:
    options = candidates("auth_failed", {"source_id": 1, "source_mode": "event", "path": "reconcile"})
    assert options and all(s.needs_approval for s in options)


def test_a_drift_blamed_on_an_outage_is_fixed_by_reconciling_not_by_calling_the_upstream_again() -> None:
    # given: a reconciliation drift whose RCA is the outage before it
    drift = {"source_id": 1, "source_mode": "event", "kind": "reconciliation_drift"}
    # when
    automatic = [s.name for s in candidates("upstream_unavailable", drift) if not s.needs_approval]
    # then
    assert automatic == ["full_reconcile"]
    outage = {"source_id": 1, "source_mode": "polling", "kind": "upstream_unavailable"}
    assert "full_reconcile" not in {s.name for s in candidates("upstream_unavailable", outage)}


def test_a_source_without_an_upstream_truth_is_not_offered_a_reconciliation() -> None:
    # given: gaps in the stream of a source with a feed but no snapshot (nothing to reconcile against)
    gaps = {"source_id": 1, "source_mode": "event", "kind": "stream_gaps", "path": "push"}
    # then: reconciling is offered only where the source has a snapshot or a rest listing
    assert "full_reconcile" in {s.name for s in candidates("stream_gaps", {**gaps, "reconcilable": True})}
    assert "full_reconcile" not in {s.name for s in candidates("stream_gaps", {**gaps, "reconcilable": False})}
