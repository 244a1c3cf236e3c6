"""Weighted fair sharing of a round's capacity between tenants. Pure.

Each dispatch round (polls, reconciliations) may put only so many tasks on
its queue: what the workers can take before the next round (backpressure).
`fair_shares` splits that capacity between the tenants with due work,
weighted max-min fair (water filling):

1. Every tenant is entitled to `capacity * weight / total weight` of the
   round; a tenant that needs less than its entitlement gets what it
   needs, and what it leaves is shared again between the others, in
   proportion to their weights, until nobody is left with room.
2. Entitlements are fractions; each tenant gets the whole part, and the
   units left over go one each to the tenants that have waited longest
   (the larger fraction first among equals). With more tenants than units
   (a thousand tenants with one due poll each, 200 slots) the round is a
   queue ordered by waiting time: work that became due later is never
   served before it, so nobody starves, whatever its tier.

So a tenant with 5,000 due polls takes the capacity the others leave, and
another tenant's single due poll goes out in the same round.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

# Tier weights by default: a premium tenant gets four times a free one's share when both are busy.
DEFAULT_TIER_WEIGHTS: dict[str, float] = {"free": 1.0, "standard": 2.0, "premium": 4.0}


def tier_weight(tier: str, weights: Mapping[str, float] | None = None) -> float:
    """The weight of a tier; an unknown tier weighs like the smallest known one (never zero)."""
    table = DEFAULT_TIER_WEIGHTS if weights is None else weights
    if tier in table and table[tier] > 0:
        return float(table[tier])
    positive = [w for w in table.values() if w > 0]
    return float(min(positive)) if positive else 1.0


def fair_shares(
    demands: Mapping[K, int],
    weights: Mapping[K, float],
    capacity: int,
    *,
    waiting_since: Mapping[K, float] | None = None,
) -> dict[K, int]:
    """How many units of `capacity` each claimant gets (0 for none); never more than it asked for.

    `demands`: due units per claimant. `weights`: its weight (> 0; missing
    or non-positive counts as 1). `waiting_since`: when its oldest unit
    became due (epoch seconds; smaller waits longer): who gets the units
    left over after the whole parts.
    """
    if capacity <= 0:
        return dict.fromkeys(demands, 0)
    wanting = {k: int(d) for k, d in demands.items() if d > 0}
    shares: dict[K, float] = {}
    room = float(capacity)
    # Water filling: satisfy whoever needs less than its entitlement, share the rest again.
    while wanting and room > 0:
        total = sum(_weight(weights, k) for k in wanting)
        entitled = {k: room * _weight(weights, k) / total for k in wanting}
        satisfied = {k for k, need in wanting.items() if need <= entitled[k]}
        if not satisfied:
            shares.update(entitled)
            room = 0.0
            break
        for k in satisfied:
            shares[k] = float(wanting.pop(k))
            room -= shares[k]
    granted = {k: min(math.floor(s + 1e-9), int(demands[k])) for k, s in shares.items()}
    left = capacity - sum(granted.values())
    since = waiting_since or {}
    # The leftover units: longest waiting first, then the largest fraction, then a stable order.
    order = sorted(
        (k for k in shares if granted[k] < demands[k]),
        key=lambda k: (since.get(k, math.inf), -(shares[k] - granted[k]), repr(k)),
    )
    for k in order:
        if left <= 0:
            break
        granted[k] += 1
        left -= 1
    return {k: granted.get(k, 0) for k in demands}


def _weight(weights: Mapping[K, float], k: K) -> float:
    w = weights.get(k, 1.0)
    return w if w > 0 else 1.0
