"""Prometheus metrics of failures, RCA and healing (served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

FAILURES = Counter("beastflow_failures_total", "New failure records", ["kind"])
RCA_RESULTS = Counter("beastflow_rca_results_total", "RCA results", ["category"])
RCA_CONFIRMATIONS = Counter("beastflow_rca_confirmations_total", "Operator confirmations", ["agreed"])
ACTIONS = Counter("beastflow_healing_actions_total", "Healing action state changes", ["strategy", "status"])
DECISIONS = Counter("beastflow_healing_decisions_total", "Operator decisions on healing actions", ["decision"])
ESCALATIONS = Counter("beastflow_healing_escalations_total", "Escalations of unanswered requests", ["level"])
OUTCOMES = Counter("beastflow_healing_outcomes_total", "Verified healing outcomes", ["strategy", "result"])
TICK_SECONDS = Histogram("beastflow_healing_tick_seconds", "One tenant's healing tick")
QUEUE_WAIT_SECONDS = Histogram(
    "beastflow_failure_queue_wait_seconds",
    "From a failure's first report to its analysis",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 900),
)
