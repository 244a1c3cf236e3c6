from __future__ import annotations

from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    name = "observability"
    verbose_name = "Observability"

    def ready(self) -> None:
        from beastflow.metrics import collector_register
        from observability.capacity_metrics import TenantIngestCollector
        from observability.collectors import SourcesCollector

        collector_register(SourcesCollector)  # sources per mode, per-source health, callback backlog on /metrics
        collector_register(TenantIngestCollector)  # each tenant's ingest rate against its quota
