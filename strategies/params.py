"""What a strategy version holds: the parameters of every adaptive policy, validated.

Pure (pydantic, no ORM). The engines' parts are validated by the very
models that validate a source's definition (engines.schemas), so a version
can hold nothing a source could not; the healing part is the bandit's
learning parameters, which only exist here.

A version's `params` is stored whole, every default filled in, so that two
versions compare field by field (`diff`) and what a source ran under is
readable without knowing which defaults were current at the time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engines.schemas import HealthConfig, HysteresisConfig, PollConfig, field_errors

# The source fields a version writes (the engines read them on every judgement and poll).
SOURCE_FIELDS = ("hysteresis", "health", "poll")


class HealingParams(BaseModel):
    """How the healing bandit learns for this tenant (healing.bandit, strategies.hierarchy).

    - `prior_strength` (10): how many outcomes' worth the pooled prior of
      every tenant counts for, against this tenant's own outcomes. 0: the
      tenant learns alone, from a flat prior (the behaviour before versions).
    - `max_prior_strength` (50): the cap when the prior's strength is fitted
      from the tenants' spread (`fit_strength`).
    - `fit_strength` (true): fit the strength from how much tenants differ
      (empirical Bayes), within [0, `max_prior_strength`]; false: take
      `prior_strength` as it is.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    prior_strength: float = Field(default=10.0, ge=0, le=1_000)
    max_prior_strength: float = Field(default=50.0, ge=0, le=1_000)
    fit_strength: bool = True


class StrategyParams(BaseModel):
    """A whole version: hysteresis, health, polling and healing parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hysteresis: HysteresisConfig = Field(default_factory=HysteresisConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    poll: PollConfig = Field(default_factory=PollConfig)
    healing: HealingParams = Field(default_factory=HealingParams)

    def stored(self) -> dict[str, Any]:
        """Every field with its value, defaults included: what a version row keeps."""
        return self.model_dump(mode="json")

    def source_fields(self) -> dict[str, dict[str, Any]]:
        """What a source assigned this version gets in its `hysteresis`, `health` and `poll` fields."""
        dumped = self.stored()
        return {name: dumped[name] for name in SOURCE_FIELDS}


def validate_params(raw: Any) -> tuple[StrategyParams | None, list[dict[str, str]]]:
    """The parameters, or every error in them with its field path (problem+json `errors[]`)."""
    if not isinstance(raw, Mapping):
        return None, [{"field": "params", "message": "an object is required"}]
    try:
        return StrategyParams.model_validate(dict(raw)), []
    except ValidationError as exc:
        return None, field_errors(exc, prefix="params")


def merged(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """`patch` over `base`, one level of sections deep (a new version names only what it changes)."""
    out: dict[str, Any] = {name: dict(section) for name, section in base.items() if isinstance(section, Mapping)}
    for name, section in patch.items():
        if isinstance(section, Mapping) and isinstance(out.get(name), dict):
            out[name] = {**out[name], **section}
        else:
            out[name] = section
    return out


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Field-by-field changes between two stored parameter sets: [{field, old, new}], sorted by field.

    A field missing on one side shows as None there (a section a later
    schema added, or dropped).
    """
    changes: list[dict[str, Any]] = []
    for section in sorted(set(old) | set(new)):
        a, b = old.get(section), new.get(section)
        if isinstance(a, Mapping) or isinstance(b, Mapping):
            a_map: Mapping[str, Any] = a if isinstance(a, Mapping) else {}
            b_map: Mapping[str, Any] = b if isinstance(b, Mapping) else {}
            for name in sorted(set(a_map) | set(b_map)):
                if a_map.get(name) != b_map.get(name):
                    changes.append({"field": f"{section}.{name}", "old": a_map.get(name), "new": b_map.get(name)})
        elif a != b:
            changes.append({"field": section, "old": a, "new": b})
    return changes
