from __future__ import annotations

from django.apps import AppConfig


class StrategiesConfig(AppConfig):
    name = "strategies"
    verbose_name = "Strategies"

    def ready(self) -> None:
        # Healing sits beside strategies and must not import it: it asks the
        # priors registered here (healing.healer.PRIORS) for the other
        # tenants' pooled outcomes when it chooses a strategy.
        from healing.healer import PRIORS
        from strategies.bandit_prior import prior_for

        if prior_for not in PRIORS:
            PRIORS.append(prior_for)

        # A source created after the tenant chose a default version follows it
        # from its first judgement. A receiver rather than a call in
        # engines.sources: the engines must not know strategies exist.
        from django.db.models.signals import post_save

        from engines.models import Source

        post_save.connect(_follow_default, sender=Source, dispatch_uid="strategies_follow_default")


def _follow_default(sender: object, instance: object, created: bool, raw: bool = False, **kwargs: object) -> None:
    if not created or raw:
        return
    from strategies.services import source_follow_default

    source_follow_default(source=instance)  # type: ignore[arg-type]
