"""The RCA engine: a failure's features -> ranked root causes with evidence.

Pure (no Django, no I/O). Steps:

1. Evaluate every rule's conditions over the flat feature dict.
2. Per category keep the most confident matching rule (its evidence first,
   the other matching rules' evidence after it).
3. Rank by confidence; `unknown` comes last at a low confidence whenever no
   rule names a category, so there is always an answer.
4. Append the context evidence (shared host, mode switches, config change,
   recurrence) to every diagnosis: the operator sees the same facts whatever
   the ranking.

`rerank` folds a learner's probabilities into the rules' ranking.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from healing.rca.rules import RULES, RULES_VERSION, Condition, Rule
from healing.schemas import RCACategory

UNKNOWN_CONFIDENCE = 0.3

# The features the rules and templates may use (healing.rca.context builds them).
FEATURES = (
    "kind", "path", "host", "http_status", "error", "retry_after_s", "occurrences",
    "host_sources", "host_tenants", "host_down", "host_kinds",
    "recent_switches", "config_changed_recently", "config_changed_s",
    "push_errors", "push_total", "push_error_rate", "silence_s", "expected_interval_s",
    "missing", "contiguous_seq", "highest_seq", "drift_total", "in_mode_switch_window",
    "recurrences", "period_s", "source_mode", "source_failure_kinds", "push_silences", "reconcilable",
)  # fmt: skip


@dataclass(frozen=True)
class Diagnosis:
    category: RCACategory
    confidence: float
    rule: str  # "<id>@<version>", empty for the unknown fallback
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"category": self.category.value, "confidence": round(self.confidence, 3), "rule": self.rule}


class _Blank(dict[str, Any]):
    """Templates never fail on a fact that was not gathered: it reads as '?'."""

    def __missing__(self, key: str) -> str:
        return "?"


def _holds(condition: Condition, features: Mapping[str, Any]) -> bool:
    value = features.get(condition.feature)
    match condition.op:
        case "eq":
            return bool(value == condition.value)
        case "ne":
            return bool(value != condition.value)
        case "in":
            return value in condition.value  # type: ignore[operator]
        case "gte":
            return isinstance(value, int | float) and value >= condition.value  # type: ignore[operator]
        case "lte":
            return isinstance(value, int | float) and value <= condition.value  # type: ignore[operator]
        case "mentions":  # a comma-separated feature names any of the values
            named = {part.strip() for part in str(value or "").split(",")}
            return bool(named & set(condition.value))  # type: ignore[call-overload]
        case "true":
            return bool(value)
        case "false":
            return not value
    raise ValueError(f"unknown operator {condition.op!r}")


def matches(rule: Rule, features: Mapping[str, Any]) -> bool:
    return all(_holds(condition, features) for condition in rule.when)


def render(template: str, features: Mapping[str, Any]) -> str:
    # A fact gathered as None reads like one not gathered at all: "?", never "None".
    known = {name: value for name, value in features.items() if value is not None}
    return string.Formatter().vformat(template, (), _Blank(known))


def context_evidence(features: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The facts around the failure, whatever the category."""
    facts: list[dict[str, Any]] = []
    if (features.get("host_sources") or 0) >= 2:
        facts.append(
            {
                "kind": "shared_host",
                "text": render("{host} fails for {host_sources} sources in {host_tenants} tenants", features),
                "host": features.get("host"),
                "sources": features.get("host_sources"),
                "tenants": features.get("host_tenants"),
            }
        )
    if (features.get("recent_switches") or 0) > 0:
        facts.append(
            {
                "kind": "mode_switches",
                "text": render("{recent_switches} mode switches in the last 10 minutes", features),
                "count": features.get("recent_switches"),
            }
        )
    if features.get("config_changed_recently"):
        facts.append(
            {
                "kind": "config_change",
                "text": render("source config changed {config_changed_s}s before the failure", features),
                "seconds": features.get("config_changed_s"),
            }
        )
    recurrences = features.get("recurrences") or 0
    if recurrences:
        text = f"happened {recurrences} times before in 24 hours"
        if features.get("period_s"):
            text += render(", about every {period_s}s (periodic)", features)
        facts.append({"kind": "recurrence", "text": text, "count": recurrences, "period_s": features.get("period_s")})
    return facts


def diagnose(features: Mapping[str, Any], rules: Sequence[Rule] = RULES) -> list[Diagnosis]:
    """Ranked diagnoses, most confident first; never empty."""
    by_category: dict[RCACategory, list[tuple[Rule, str]]] = {}
    for rule in rules:
        if matches(rule, features):
            by_category.setdefault(rule.category, []).append((rule, render(rule.evidence, features)))
    context = context_evidence(features)
    diagnoses = []
    for category, found in by_category.items():
        found.sort(key=lambda item: -item[0].confidence)
        best = found[0][0]
        evidence = [{"kind": "rule", "rule": f"{r.id}@{r.version}", "text": text} for r, text in found]
        diagnoses.append(Diagnosis(category, best.confidence, f"{best.id}@{best.version}", evidence + context))
    if not diagnoses:
        diagnoses.append(
            Diagnosis(
                RCACategory.UNKNOWN,
                UNKNOWN_CONFIDENCE,
                "",
                [{"kind": "rule", "rule": "", "text": f"no rule explains a {features.get('kind')} failure"}, *context],
            )
        )
    diagnoses.sort(key=lambda d: (-d.confidence, d.category.value))
    return diagnoses


def rerank(diagnoses: Sequence[Diagnosis], probabilities: Mapping[str, float], *, weight: float) -> list[Diagnosis]:
    """Blend the rules' confidence with a learner's probability: (1 - weight) * rule + weight * learner.

    Categories the learner believes in that no rule matched join the ranking
    with the learner's share only, so a confirmed pattern can overrule rules
    that never saw it. `weight` 0 keeps the rules' order.
    """
    blended: dict[RCACategory, Diagnosis] = {}
    for d in diagnoses:
        score = (1 - weight) * d.confidence + weight * probabilities.get(d.category.value, 0.0)
        blended[d.category] = Diagnosis(d.category, score, d.rule, d.evidence)
    for name, p in probabilities.items():
        try:
            category = RCACategory(name)
        except ValueError:
            continue
        if category not in blended and weight * p > 0:
            evidence = [{"kind": "learner", "text": f"confirmed cases like this one were {name} ({p:.0%})"}]
            blended[category] = Diagnosis(category, weight * p, "learner", evidence)
    return sorted(blended.values(), key=lambda d: (-d.confidence, d.category.value))


__all__ = ["FEATURES", "RULES_VERSION", "Diagnosis", "context_evidence", "diagnose", "matches", "render", "rerank"]
