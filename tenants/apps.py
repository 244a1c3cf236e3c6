from __future__ import annotations

from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"

    def ready(self) -> None:
        from tenants.schema_spares import metrics_register

        metrics_register()  # beastflow_tenant_spares on /metrics
