from __future__ import annotations

from django.apps import AppConfig


class EnginesConfig(AppConfig):
    name = "engines"
    verbose_name = "Engines"

    def ready(self) -> None:
        from engines import health_checks  # noqa: F401  (registers the /readyz components)
        from engines.presets import registry

        registry()  # read once (~20 ms); a broken preset file stops the process here, naming the file
