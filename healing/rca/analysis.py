"""RCA as a service: analyse a failure (rules, then the learner), and take an operator's word on it."""

from __future__ import annotations

import time
from typing import Any

import structlog
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from beastflow.tenancy import current_schema
from healing import metrics
from healing.learning import NaiveBayes, train
from healing.models import FailureRecord, RCAResult
from healing.rca.context import failure_features
from healing.rca.engine import diagnose, rerank
from healing.rca.rules import RULES_VERSION
from healing.schemas import RCACategory

log = structlog.get_logger(__name__)

# A learner per tenant schema, retrained when its confirmed cases change.
_LEARNERS: dict[str, tuple[tuple[int, Any], NaiveBayes]] = {}
MAX_TRAINING_CASES = 5000


class RCAError(Exception):
    def __init__(self, status: int, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.field = status, detail, field


def confirmed_cases(limit: int = MAX_TRAINING_CASES) -> list[tuple[dict[str, Any], str]]:
    rows = (
        RCAResult.objects.exclude(confirmed_category="")
        .order_by("-confirmed_at")
        .values_list("features", "confirmed_category")[:limit]
    )
    return [(features, label) for features, label in rows]


def learner() -> NaiveBayes:
    """The current tenant's classifier over its confirmed cases (cached until they change)."""
    confirmed = RCAResult.objects.exclude(confirmed_category="")
    stamp = (confirmed.count(), confirmed.aggregate(last=Max("confirmed_at"))["last"])
    schema = current_schema()
    cached = _LEARNERS.get(schema)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    model = train(confirmed_cases())
    _LEARNERS[schema] = (stamp, model)
    return model


def rca_analyze(failure: FailureRecord) -> RCAResult:
    """Rules first; the learner re-ranks once it has enough confirmed cases. Stores and returns the result."""
    started = time.perf_counter()
    features = failure_features(failure)
    by_rules = diagnose(features)
    ranked = by_rules
    learner_view = None
    model = learner()
    weight = model.weight()
    if weight > 0:
        probabilities = model.probabilities(features)
        ranked = rerank(by_rules, probabilities, weight=weight)
        learner_view = {
            "category": next(iter(probabilities), None),
            "probabilities": {k: round(v, 3) for k, v in list(probabilities.items())[:5]},
            "weight": round(weight, 3),
            "cases": model.cases,
            "reranked": ranked[0].category != by_rules[0].category,
            "rules_category": by_rules[0].category.value,
        }
    top = ranked[0]
    result = RCAResult.objects.create(
        failure=failure,
        source_id=failure.source_id,
        category=top.category.value,
        confidence=round(top.confidence, 3),
        evidence=top.evidence,
        rule=top.rule,
        rules_version=RULES_VERSION,
        alternatives=[d.as_dict() for d in ranked],
        features=features,
        learner=learner_view,
    )
    metrics.RCA_RESULTS.labels(category=result.category).inc()
    metrics.QUEUE_WAIT_SECONDS.observe(max(0.0, (timezone.now() - failure.first_seen).total_seconds()))
    log.info(
        "rca_result",
        failure=failure.pk,
        source=failure.source_id,
        kind=failure.kind,
        category=result.category,
        confidence=result.confidence,
        rule=result.rule,
        reranked=bool(learner_view and learner_view["reranked"]),
        ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return result


@transaction.atomic
def rca_confirm(*, rca: RCAResult, actor: str, category: str | None = None, note: str = "") -> RCAResult:
    """An operator confirms the category (none given) or corrects it (another given); the learner learns it.

    A second answer replaces the first: the newest word counts.
    """
    label = category or rca.category
    if label not in {c.value for c in RCACategory}:
        raise RCAError(400, f"category must be one of {', '.join(c.value for c in RCACategory)}", "category")
    RCAResult.objects.filter(pk=rca.pk).update(
        confirmed_category=label, confirmed_by=actor, confirmed_at=timezone.now(), confirm_note=note
    )
    rca.refresh_from_db()
    metrics.RCA_CONFIRMATIONS.labels(agreed=str(label == rca.category).lower()).inc()
    log.info("rca_confirmed", rca=rca.pk, category=rca.category, confirmed=label, actor=actor)
    return rca
