"""Prometheus counters of strategies (docs/strategies.md lists them)."""

from __future__ import annotations

from prometheus_client import Counter

VERSIONS = Counter("beastflow_strategy_versions_total", "Strategy versions created")
EXPERIMENTS = Counter(
    "beastflow_experiments_total",
    "Experiments started and ended, by event (started, stopped, promoted, rejected)",
    ["event"],
)
GUARDRAILS = Counter("beastflow_experiment_guardrails_total", "Experiments stopped by a guardrail", ["guardrail"])
EVALUATIONS = Counter("beastflow_experiment_evaluations_total", "Sequential-test readings of running experiments")
