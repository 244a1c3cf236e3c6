from __future__ import annotations

from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"

    def ready(self) -> None:
        from beastflow.metrics import collector_register
        from tenants.schema_spares import SparesCollector

        collector_register(SparesCollector)  # beastflow_tenant_spares on /metrics
