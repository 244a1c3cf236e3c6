from __future__ import annotations

from django.apps import AppConfig


class EnginesConfig(AppConfig):
    name = "engines"
    verbose_name = "Engines"

    def ready(self) -> None:
        from engines import (
            health_checks,  # noqa: F401  (registers the /readyz components)
            tasks,  # noqa: F401  (registers the per-source tasks with engines.sending)
        )
        from engines.connectors.presets import registry
        from engines.reconcile import runs  # noqa: F401  (registers the full_reconcile strategy handler)

        registry()  # read once (~20 ms); a broken preset file stops the process here, naming the file

        from tenants.schema_template import after_clone

        # A new tenant's schema is cloned without the template's dated
        # partitions: its current ones are made in the same transaction.
        if _ensure_partitions not in after_clone:
            after_clone.append(_ensure_partitions)


def _ensure_partitions(schema: str) -> None:
    from engines.partitions import partitions_ensure

    partitions_ensure(schema=schema)
