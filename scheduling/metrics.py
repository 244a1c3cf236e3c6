"""Prometheus gauges read when /metrics is scraped: the monitor's lag and each queue's depth and lag.

Read from the database and the broker at scrape time rather than counted
in a process: the web process serves /metrics, while the work happens in
workers on other machines; the schedule table and the broker see them all.
"""

from __future__ import annotations

from collections.abc import Iterator

import structlog
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = structlog.get_logger(__name__)


class SchedulingCollector(Collector):
    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Without describe() the registry would collect (query the database) when registering.
        yield GaugeMetricFamily("beastflow_monitor_lag_seconds", "", value=0)
        yield GaugeMetricFamily("beastflow_monitor_due_sources", "", value=0)
        yield GaugeMetricFamily("beastflow_queue_depth", "", labels=["queue"])
        yield GaugeMetricFamily("beastflow_queue_lag_seconds", "", labels=["queue"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from scheduling.claims import oldest_due_eval
        from scheduling.queues import queue_states

        try:
            due, lag = oldest_due_eval()
            yield GaugeMetricFamily(
                "beastflow_monitor_lag_seconds", "How long the oldest due-but-unjudged source has waited", value=lag
            )
            yield GaugeMetricFamily("beastflow_monitor_due_sources", "Sources due for a judgement now", value=due)
        except Exception:
            log.warning("metrics_monitor_lag_failed", exc_info=True)
        try:
            states = queue_states()
        except Exception:
            log.warning("metrics_queues_failed", exc_info=True)
            return
        depth = GaugeMetricFamily("beastflow_queue_depth", "Messages waiting in a Celery queue", labels=["queue"])
        age = GaugeMetricFamily(
            "beastflow_queue_lag_seconds", "How long the oldest message of a queue has waited", labels=["queue"]
        )
        for state in states:
            depth.add_metric([state.name], state.depth)
            age.add_metric([state.name], state.oldest_age_s or 0.0)
        yield depth
        yield age
