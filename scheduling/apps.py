from __future__ import annotations

from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "scheduling"
    verbose_name = "Scheduling"

    def ready(self) -> None:
        from beastflow.metrics import collector_register
        from scheduling import health_checks  # noqa: F401  (registers the /readyz components)
        from scheduling.metrics import SchedulingCollector

        collector_register(SchedulingCollector)  # the lag and queue gauges on /metrics
