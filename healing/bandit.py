"""Which healing strategy to try: Thompson sampling over observed outcomes.

Pure. Each (category, strategy) pair has seen `successes` and `failures`;
its success probability is believed to be Beta(successes + 1, failures + 1)
(uniform before any outcome). To choose, draw once from every candidate's
Beta and take the highest draw: strategies that worked are tried most,
untried ones still get a chance in proportion to what is not known about them.
The random source is injected, so a test can seed it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Arm:
    """One strategy's outcomes, plus a prior's pseudo-counts (0: the flat Beta(1, 1)).

    The prior is what other tenants' outcomes suggest (strategies.hierarchy):
    the posterior is Beta(s + prior_s + 1, f + prior_f + 1).
    """

    successes: int = 0
    failures: int = 0
    prior_successes: float = 0.0
    prior_failures: float = 0.0

    @property
    def alpha(self) -> float:
        return self.successes + self.prior_successes + 1

    @property
    def beta(self) -> float:
        return self.failures + self.prior_failures + 1

    @property
    def mean(self) -> float:
        """The posterior mean, (s + prior_s + 1) / (s + f + prior_s + prior_f + 2)."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def trials(self) -> int:
        return self.successes + self.failures


def choose(candidates: Sequence[str], arms: Mapping[str, Arm], rng: random.Random) -> str:
    """One Thompson draw per candidate (in the given order, for reproducibility); the best draw wins."""
    if not candidates:
        raise ValueError("no candidate strategy")
    best, best_draw = candidates[0], -1.0
    for name in candidates:
        arm = arms.get(name, Arm())
        draw = rng.betavariate(arm.alpha, arm.beta)
        if draw > best_draw:
            best, best_draw = name, draw
    return best
