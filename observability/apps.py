from __future__ import annotations

from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    name = "observability"
    verbose_name = "Observability"

    def ready(self) -> None:
        from observability import capacity_metrics
        from observability.collectors import register

        register()  # sources per mode, per-source health, callback backlog on /metrics
        capacity_metrics.register()  # each tenant's ingest rate against its quota
