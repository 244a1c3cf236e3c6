from __future__ import annotations

from django.apps import AppConfig


class CallbacksConfig(AppConfig):
    name = "callbacks"
    verbose_name = "Outbound callbacks"

    def ready(self) -> None:
        from callbacks import (
            health_checks,  # noqa: F401  (registers the /readyz components)
            tasks,  # noqa: F401  (registers the delivery task with callbacks.wake)
        )
        from callbacks.listeners import listen

        listen()  # committed changes wake deliveries (engines/outbound.py)
