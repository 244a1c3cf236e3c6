"""Learning from operators: a naive Bayes classifier over confirmed RCA cases.

Pure Python (no scikit-learn: a few hundred confirmed cases and a dozen
categories need no more). Each case is the feature dict the rules saw,
turned into discrete tokens ("kind=auth_failed", "host_down", "switches>=4",
...), labelled with the category an operator confirmed. Multinomial naive
Bayes with Laplace smoothing: fast to retrain from scratch every time, good
with little data, and its probabilities re-rank the rules' categories
(healing.rca.engine.rerank). The rules stay the fallback: below
`MIN_CASES` confirmed cases the learner is not consulted.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MIN_CASES = 8
# How much the learner's probability counts against the rules' confidence,
# growing with the evidence it has (capped: rules keep a say).
MAX_WEIGHT = 0.5
WEIGHT_FULL_AT = 50


def _bucket(value: Any, edges: Sequence[float]) -> str:
    if not isinstance(value, int | float):
        return "none"
    for edge in edges:
        if value < edge:
            return f"<{edge:g}"
    return f">={edges[-1]:g}"


def tokens(features: Mapping[str, Any]) -> list[str]:
    """The discrete facts of a case. Hosts and ids are left out: they do not generalise."""
    out = [f"kind={features.get('kind')}", f"path={features.get('path') or 'feed'}"]
    status = features.get("http_status")
    if isinstance(status, int):
        out.append(f"status={status}")
        out.append(f"status_class={status // 100}xx")
    for flag in ("host_down", "config_changed_recently", "in_mode_switch_window"):
        if features.get(flag):
            out.append(flag)
    out.append("switches" + _bucket(features.get("recent_switches"), (1, 2, 4, 8)))
    out.append("hosts" + _bucket(features.get("host_sources"), (2, 4)))
    out.append("push_err" + _bucket(features.get("push_error_rate"), (0.01, 0.2, 0.5)))
    out.append("recur" + _bucket(features.get("recurrences"), (1, 3, 10)))
    if features.get("period_s"):
        out.append("periodic")
    if features.get("retry_after_s") is not None:
        out.append("retry_after")
    # What else failed on the source around it: a drift after an outage is the outage's.
    out.extend(
        f"with={kind.strip()}" for kind in str(features.get("source_failure_kinds") or "").split(",") if kind.strip()
    )
    return out


@dataclass
class NaiveBayes:
    alpha: float = 1.0
    class_counts: Counter[str] = field(default_factory=Counter)
    token_counts: dict[str, Counter[str]] = field(default_factory=dict)
    vocabulary: set[str] = field(default_factory=set)

    @property
    def cases(self) -> int:
        return sum(self.class_counts.values())

    def learn(self, features: Mapping[str, Any], label: str) -> None:
        """Online: one confirmed case at a time."""
        self.class_counts[label] += 1
        counts = self.token_counts.setdefault(label, Counter())
        for token in tokens(features):
            counts[token] += 1
            self.vocabulary.add(token)

    def probabilities(self, features: Mapping[str, Any]) -> dict[str, float]:
        """P(category | tokens) for every category seen, summing to 1; empty before any case."""
        if not self.class_counts:
            return {}
        total = self.cases
        size = max(1, len(self.vocabulary))
        scores: dict[str, float] = {}
        case_tokens = tokens(features)
        for label, n in self.class_counts.items():
            counts = self.token_counts[label]
            denominator = sum(counts.values()) + self.alpha * size
            score = math.log(n / total)
            for token in case_tokens:
                score += math.log((counts[token] + self.alpha) / denominator)
            scores[label] = score
        top = max(scores.values())
        exp = {label: math.exp(score - top) for label, score in scores.items()}
        norm = sum(exp.values())
        return {label: value / norm for label, value in sorted(exp.items(), key=lambda kv: -kv[1])}

    def predict(self, features: Mapping[str, Any]) -> str | None:
        probabilities = self.probabilities(features)
        return next(iter(probabilities), None)

    def weight(self) -> float:
        """How much to trust it now: 0 below MIN_CASES, then up to MAX_WEIGHT."""
        if self.cases < MIN_CASES:
            return 0.0
        return MAX_WEIGHT * min(1.0, self.cases / WEIGHT_FULL_AT)


def train(cases: Sequence[tuple[Mapping[str, Any], str]]) -> NaiveBayes:
    model = NaiveBayes()
    for features, label in cases:
        model.learn(features, label)
    return model


@dataclass(frozen=True)
class Evaluation:
    trained_on: int
    held_out: int
    correct: int

    @property
    def accuracy(self) -> float | None:
        return None if self.held_out == 0 else self.correct / self.held_out

    def as_dict(self) -> dict[str, Any]:
        accuracy = self.accuracy
        return {
            "trained_on": self.trained_on,
            "held_out": self.held_out,
            "correct": self.correct,
            "accuracy": None if accuracy is None else round(accuracy, 3),
        }


def evaluate(
    cases: Sequence[tuple[Mapping[str, Any], str]], *, held_out_share: float = 0.3, seed: int = 0
) -> Evaluation:
    """Accuracy on a held-out share of the confirmed cases (seeded shuffle), trained on the rest."""
    shuffled = list(cases)
    random.Random(seed).shuffle(shuffled)
    cut = round(len(shuffled) * held_out_share)
    held, rest = shuffled[:cut], shuffled[cut:]
    model = train(rest)
    correct = sum(1 for features, label in held if model.predict(features) == label)
    return Evaluation(trained_on=len(rest), held_out=len(held), correct=correct)
