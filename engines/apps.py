from __future__ import annotations

from django.apps import AppConfig


class EnginesConfig(AppConfig):
    name = "engines"
    verbose_name = "Engines"

    def ready(self) -> None:
        from engines import health_checks  # noqa: F401  (registers the /readyz components)
