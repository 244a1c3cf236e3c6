from __future__ import annotations

from django.apps import AppConfig


class RetentionConfig(AppConfig):
    """Data lifecycle: partitions made ahead and retention across tenants' tables (docs/scaling.md).

    A room of its own because it reads engines (the tables) and callbacks
    (what subscriptions still have to deliver holds the changes floor), and
    neither of those should depend on the other for it. No models.
    """

    name = "retention"
    verbose_name = "Retention"
