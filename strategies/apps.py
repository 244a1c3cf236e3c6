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
