"""Simulator profiles: which upstream the simulator pretends to be (see profiles/base.py).

- `beastflow` (default): BeastFlow's own protocol, docs/contract.md §4 pushes and §6 feed;
- `github`: a repository's issues API and `issues` webhooks;
- `stripe`: the Events and Customers APIs and `customer.*` webhooks;
- `shopify`: a store's orders (Admin REST API) and `orders/*` webhooks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from simulator.profiles.base import Profile
from simulator.profiles.beastflow import BeastflowProfile
from simulator.profiles.github import GithubProfile
from simulator.profiles.shopify import ShopifyProfile
from simulator.profiles.stripe import StripeProfile

if TYPE_CHECKING:
    from simulator.state import Simulator

PROFILES: dict[str, type[Profile]] = {
    BeastflowProfile.name: BeastflowProfile,
    GithubProfile.name: GithubProfile,
    StripeProfile.name: StripeProfile,
    ShopifyProfile.name: ShopifyProfile,
}


def build_profile(name: str, sim: Simulator, options: Mapping[str, Any]) -> Profile:
    """The named profile over `sim`. Raises ValueError for an unknown name or option."""
    try:
        cls = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r} (known: {', '.join(sorted(PROFILES))})") from None
    try:
        return cls(sim, **options)
    except TypeError as exc:  # an option the profile does not take
        raise ValueError(f"profile {name}: {exc}") from exc
