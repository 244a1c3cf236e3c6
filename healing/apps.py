from __future__ import annotations

from django.apps import AppConfig


class HealingConfig(AppConfig):
    name = "healing"
    verbose_name = "Healing"

    def ready(self) -> None:
        from healing import health_checks  # noqa: F401  (registers the /readyz components)
