from __future__ import annotations

from django.apps import AppConfig


class BeastflowConfig(AppConfig):
    name = "beastflow"
    verbose_name = "BeastFlow platform"

    def ready(self) -> None:
        from beastflow import health_checks  # noqa: F401  (registers the platform components)
