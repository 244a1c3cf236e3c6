"""Healing bandit learning per tenant, shrunk toward a prior pooled over every tenant.

Pure. Each tenant keeps its own outcome counts per (category, strategy) in
its schema (healing.models.StrategyStats); alone, a tenant with three
outcomes learns from three outcomes. Here its Beta posterior also gets the
other tenants' experience, as pseudo-counts worth `strength` outcomes:

    Beta(s + strength * m + 1, f + strength * (1 - m) + 1)

where m is the pooled success rate of the other tenants (leave-one-out: the
tenant's own outcomes are taken out of the pool, so they are not counted
twice). With few outcomes of its own the tenant follows the pool; with many,
its own counts dominate, so one tenant's odd upstream teaches the others a
little and its own choices a lot.

`fit_strength` is the empirical-Bayes step: the more tenants disagree about
a strategy, the less the pool is worth (method of moments on the Beta-
binomial): strength = m (1 - m) / between-tenant variance - 1, clamped to
[0, cap]. Tenants that agree make a strong prior; tenants that differ a weak one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Below this many tenants with outcomes, the spread between tenants is not
# estimated: the configured strength is taken as it is.
MIN_TENANTS_TO_FIT = 3


@dataclass(frozen=True)
class Pool:
    """Every tenant's outcomes of one (category, strategy), summed, and the fitted strength."""

    successes: int
    failures: int
    strength: float | None = None  # None: not fitted (too few tenants)

    def without(self, successes: int, failures: int) -> tuple[int, int]:
        """The pool minus one tenant's own counts (never below zero: the pool may be a little stale)."""
        return max(0, self.successes - successes), max(0, self.failures - failures)


def fit_strength(counts: Sequence[tuple[int, int]], *, cap: float) -> float | None:
    """The prior's strength from how much tenants' success rates differ; None with too few tenants."""
    rated = [(s, f) for s, f in counts if s + f > 0]
    if len(rated) < MIN_TENANTS_TO_FIT:
        return None
    total_s = sum(s for s, _ in rated)
    total_n = sum(s + f for s, f in rated)
    m = total_s / total_n
    if m in (0.0, 1.0):
        return cap  # every tenant saw the same thing: trust the pool as far as allowed
    rates = [s / (s + f) for s, f in rated]
    mean_rate = sum(rates) / len(rates)
    observed = sum((r - mean_rate) ** 2 for r in rates) / (len(rates) - 1)
    # What binomial noise alone would spread the rates by, at each tenant's number of outcomes.
    noise = sum(m * (1 - m) / (s + f) for s, f in rated) / len(rated)
    between = observed - noise
    if between <= 0:
        return cap
    return min(cap, max(0.0, m * (1 - m) / between - 1))


def pools(
    per_tenant: Mapping[str, Mapping[tuple[str, str], tuple[int, int]]], *, cap: float
) -> dict[tuple[str, str], Pool]:
    """Per (category, strategy): the summed counts of every tenant and the fitted strength."""
    by_pair: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for counts in per_tenant.values():
        for pair, (s, f) in counts.items():
            by_pair.setdefault(pair, []).append((s, f))
    return {
        pair: Pool(sum(s for s, _ in rows), sum(f for _, f in rows), fit_strength(rows, cap=cap))
        for pair, rows in by_pair.items()
    }


def prior(pool: Pool | None, *, own: tuple[int, int], strength: float, cap: float, fit: bool) -> tuple[float, float]:
    """The pseudo-counts (successes, failures) one tenant's posterior starts from.

    `strength` 0 turns the pool off (the tenant learns alone); with `fit`,
    the strength fitted from the tenants' spread is used instead, up to `cap`.
    """
    if pool is None or strength <= 0:
        return 0.0, 0.0
    s, f = pool.without(*own)
    if s + f == 0:
        return 0.0, 0.0
    k = pool.strength if fit and pool.strength is not None else strength
    k = min(k, cap) if fit else k
    m = (s + 1) / (s + f + 2)  # the other tenants' rate, itself smoothed
    return k * m, k * (1 - m)
