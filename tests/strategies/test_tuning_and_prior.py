"""Tuning through the API (scenarios, a source's recorded verdicts) and the healing bandit's pooled prior."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django_tenants.utils import tenant_context

from beastflow.redis_client import get_redis, key
from engines.models import HealthSample
from healing import healer
from healing.models import StrategyStats
from strategies.bandit_prior import POOL_KEY, pool_refresh
from tests.conftest import Persona
from tests.factories import make_source

DEMO = {"fail_threshold": 3, "min_dwell_s": 15, "max_dwell_s": 60, "flap_window_s": 120, "validation_window_s": 10}


def _base(client: object) -> dict:
    response = client.post(  # type: ignore[attr-defined]
        "/api/v1/strategy-configs",
        {"config": "tuned", "params": {"hysteresis": DEMO, "poll": {"max_interval_s": 10}}, "reason": "demo"},
        format="json",
    )
    assert response.status_code == 201
    return response.json()


def test_tuning_on_the_simulators_scenarios_proposes_a_new_version_and_adopts_nothing(alice: Persona) -> None:
    client = alice.client()
    base = _base(client)
    # when
    response = client.post(
        "/api/v1/strategy-configs/tuned/versions/1/tune",
        {"scenarios": ["demo-steady", "demo-outage", "demo-flaky"], "seeds": 2, "loops": 2},
        format="json",
    )
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["improves"] and body["version"]["number"] == 2
    assert body["best"]["away_s"] < body["baseline"]["away_s"]
    assert body["version"]["origin"]["tuned_from"] == 1
    assert body["version"]["sources"] == 0  # proposed, not adopted
    assert base["id"] != body["version"]["id"]


def test_tuning_refuses_an_unknown_scenario_and_asks_for_one_history(alice: Persona) -> None:
    client = alice.client()
    _base(client)
    unknown = client.post("/api/v1/strategy-configs/tuned/versions/1/tune", {"scenarios": ["../etc"]}, format="json")
    neither = client.post("/api/v1/strategy-configs/tuned/versions/1/tune", {}, format="json")
    assert unknown.status_code == 422 and neither.status_code == 422


def test_tuning_on_a_sources_verdicts_proposes_the_smallest_threshold_that_would_not_have_switched(
    alice: Persona,
) -> None:
    client = alice.client()
    _base(client)
    with tenant_context(alice.tenant):
        source, _ = make_source("noisy")
        start = timezone.now() - timedelta(hours=1)
        # A lone bad verdict every minute for an hour, a judgement every 2 s, and no switch recorded.
        HealthSample.objects.bulk_create(
            HealthSample(
                source=source,
                at=start + timedelta(seconds=t),
                score=40 if t % 60 == 0 else 90,
                verdict="bad" if t % 60 == 0 else "good",
                mode="event",
                measures={},
            )
            for t in range(0, 3600, 2)
        )
    # when
    response = client.post(
        "/api/v1/strategy-configs/tuned/versions/1/tune", {"source_id": source.pk, "hours": 2}, format="json"
    )
    # then: 1 would have switched on every lone bad verdict; 2 never does, with the smallest dwell
    assert response.status_code == 200, response.content
    assert response.json()["best"]["changes"] == {"fail_threshold": 2, "min_dwell_s": 0}
    assert response.json()["version"]["params"]["hysteresis"]["fail_threshold"] == 2


def test_a_tenant_with_no_outcomes_starts_from_the_other_tenants_experience(alice: Persona, charlie: Persona) -> None:
    # given: globex saw retry_backoff work 40 times out of 40 for an outage, and hold_in_polling fail 20 times
    with tenant_context(charlie.tenant):
        StrategyStats.objects.create(category="upstream_outage", strategy="retry_backoff", successes=40, failures=0)
        StrategyStats.objects.create(category="upstream_outage", strategy="hold_in_polling", successes=0, failures=20)
    # when
    pairs = pool_refresh()
    with tenant_context(alice.tenant):
        arms = healer.arms("upstream_outage")
    # then: acme, with no outcome of its own, leans the way globex learned
    assert pairs >= 2
    assert arms["retry_backoff"].mean > 0.85 and arms["hold_in_polling"].mean < 0.15
    assert arms["retry_backoff"].successes == 0  # its own counts stay its own
    # and globex's own counts are not counted twice for globex
    with tenant_context(charlie.tenant):
        own = healer.arms("upstream_outage")
    assert own["retry_backoff"].prior_successes == 0
    get_redis().delete(key(POOL_KEY))


def test_tuning_on_a_failure_recording_replays_the_recorded_judgements_under_each_candidate(alice: Persona) -> None:
    from healing.models import FailureRecord
    from tests.observability.test_replay import _outage_and_recovery

    # given: an outage the monitor judged (fail_threshold 2, dwell 5 s), its failure recorded
    source = _outage_and_recovery(alice)
    with tenant_context(alice.tenant):
        failure = FailureRecord.objects.filter(source=source).order_by("first_seen").first()
        assert failure is not None
    client = alice.client()
    recorded = client.post(f"/api/v1/failures/{failure.pk}/recording", {"before_s": 900, "after_s": 900}, format="json")
    assert recorded.status_code == 201, recorded.content
    base = client.post(
        "/api/v1/strategy-configs",
        {
            "config": "recorded",
            "params": {"hysteresis": {"fail_threshold": 4, "recover_threshold": 2, "min_dwell_s": 30}},
            "reason": "slow",
        },
        format="json",
    ).json()
    # when
    response = client.post(
        f"/api/v1/strategy-configs/recorded/versions/{base['number']}/tune", {"failure_id": failure.pk}, format="json"
    )
    # then: a faster set that makes no more switches on the recorded judgements
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["improves"], body
    assert body["best"]["misjudged_s"] < body["baseline"]["misjudged_s"]
    assert body["best"]["switches"] <= body["baseline"]["switches"] and body["best"]["flap_holds"] == 0
    assert body["version"]["origin"]["failure"] == failure.pk
    # and another tenant's failure has no recording here
    other = alice.client().post(
        f"/api/v1/strategy-configs/recorded/versions/{base['number']}/tune", {"failure_id": 999999}, format="json"
    )
    assert other.status_code == 404


def test_a_proposal_can_go_straight_into_an_experiment_and_without_sources_nothing_is_stored(alice: Persona) -> None:
    client = alice.client()
    _base(client)
    tune_body = {"scenarios": ["demo-outage"], "seeds": 1, "loops": 2, "metric": "time_to_detect"}
    # when: no source to split
    refused = client.post("/api/v1/strategy-configs/tuned/versions/1/tune", tune_body, format="json")
    # then: neither the proposal nor an experiment
    assert refused.status_code == 422
    assert [v["number"] for v in client.get("/api/v1/strategy-configs?config=tuned").json()["results"]] == [1]
    # when: with sources
    with tenant_context(alice.tenant):
        for n in range(4):
            make_source(f"t{n}")
    started = client.post("/api/v1/strategy-configs/tuned/versions/1/tune", tune_body, format="json")
    # then
    assert started.status_code == 200, started.content
    body = started.json()
    assert body["experiment"]["control"]["id"] != body["experiment"]["treatment"]["id"]
    assert body["experiment"]["treatment"]["id"] == body["version"]["id"]
    assert body["experiment"]["status"] == "running" and body["experiment"]["metric"] == "time_to_detect"
