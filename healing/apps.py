from __future__ import annotations

from django.apps import AppConfig


class HealingConfig(AppConfig):
    name = "healing"
    verbose_name = "Healing"

    def ready(self) -> None:
        from healing import (
            healer,  # noqa: F401  (registers the handler of healing's own strategies)
            health_checks,  # noqa: F401  (registers the /readyz components)
        )
        from healing.listeners import listen

        listen()  # what the engines announce (engines/outbound.py)
