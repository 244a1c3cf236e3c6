"""Predictive health wired to the judge's batches: state kept in Redis, a predicted degradation raised as a failure."""

from __future__ import annotations

from engines.forecasts import forecasts_observe, memory_dump, memory_load
from engines.prediction import Memory, PredictionPolicy, observe
from healing.models import FailureRecord, FailureStatus
from tenants.models import Tenant
from tests.factories import make_source

STEP_S = 5.0


def test_the_predictors_memory_survives_its_round_trip_through_redis() -> None:
    memory = Memory()
    for i in range(50):
        memory, _ = observe(
            memory, at=1_700_000_000 + i * STEP_S, score=90 - i * 0.2, rate=3.0, policy=PredictionPolicy()
        )
    assert memory_load(memory_dump(memory)) == memory
    assert memory_load(b"{not json") == Memory()
    assert memory_load(None) == Memory()


def test_a_source_falling_towards_degraded_gets_a_predicted_degradation_failure(in_acme: Tenant) -> None:
    # given: two sources in event mode, one steady, one whose score falls 5 points a minute; one in polling
    steady, _ = make_source("steady")
    falling, _ = make_source("falling")
    polled, _ = make_source("polled")
    t0 = 1_700_000_000.0
    raised = 0
    # when: the judge's batches feed them, a judgement every 5 s
    for i in range(120):
        score = 100.0 if i < 30 else 100.0 - 5.0 * (i - 30) * STEP_S / 60
        if score <= 62:
            break
        batch = [
            (steady.pk, "event", 98.0, 4.0),
            (falling.pk, "event", score, 4.0),
            (polled.pk, "polling", 10.0, 0.0),
        ]
        raised += forecasts_observe(in_acme.schema_name, batch, now=t0 + i * STEP_S)
    # then: one open failure for the falling source, folding its repeats; none for the others
    failures = list(FailureRecord.objects.filter(kind="predicted_degradation", status=FailureStatus.OPEN))
    assert raised >= 1
    assert [f.source_id for f in failures] == [falling.pk]
    assert failures[0].occurrences == raised
    assert failures[0].detail["detector"] == "trend" and failures[0].detail["eta_s"] <= 600
