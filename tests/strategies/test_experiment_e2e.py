"""End to end: an A/B experiment between two hysteresis versions on the simulator, the better one promoted.

The upstream is the simulator's scenario player (simulator.scenario,
via strategies.replay.history: push outages, heartbeats, Poisson traffic
from a seed per source). Everything downstream is the service itself: each
simulated second writes the sources' stream rows as ingest would, the real
batched judge (engines.judge) scores and switches them, its switch rows carry
the strategy version (engines.switching), polls are recorded as the poller
would record a poll that caught up, the experiment reads those rows,
evaluates the sequential test and waits for an operator, who promotes the
winner through the API. The clock is the simulation's (the judge takes `now`),
so four outage cycles of 24 sources take seconds, not four minutes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from beastflow.redis_client import get_redis, key
from engines.judge import judge_sources
from engines.models import ModeSwitch, PollRun, PollStatus, PollTrigger, Source, StreamState
from simulator.scenario import parse_scenario
from strategies import services
from strategies.models import Experiment, ExperimentStatus, TenantStrategy
from strategies.replay import History, history
from tests.conftest import Persona
from tests.factories import make_source

pytestmark = pytest.mark.e2e

# The demo sources' parameters (engines/demo.py), with a slow detector in the control.
DEMO = {"recover_threshold": 5, "min_dwell_s": 15, "max_dwell_s": 60, "flap_window_s": 600, "validation_window_s": 10}
SOURCES = 24
# Healthy, then the push goes silent for 20 s (the feed still answers): the cycle of demo-outage, shortened.
SCENARIO = parse_scenario(
    {
        "name": "push-outages",
        "repeat": True,
        "phases": [
            {"name": "healthy", "duration_s": 45, "mutations_per_s": 3},
            {"name": "push-outage", "duration_s": 20, "mutations_per_s": 3, "faults": {"outage": "push"}},
        ],
    }
)


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def _play(histories: dict[int, History], *, start: float) -> None:
    """Every simulated second: the stream rows as ingest writes them, polls for the sources off push, a judgement."""
    seq: dict[int, int] = dict.fromkeys(histories, 0)
    ticks = len(next(iter(histories.values())).ticks)
    for i in range(ticks):
        now = start + i + 1
        for source_id, hist in histories.items():
            tick = hist.ticks[i]
            if not tick.push_up:
                continue
            seq[source_id] += tick.pushed
            fields = {
                "last_heartbeat_at": _at(start + tick.at + tick.heartbeat_at),
                "upstream_seq": seq[source_id],
                "highest_seq": seq[source_id],
                "contiguous_seq": seq[source_id],
                "events_total": seq[source_id],
            }
            if tick.pushed:
                fields["last_push_at"] = _at(start + tick.at + tick.pushed_at)
            StreamState.objects.filter(source_id=source_id).update(**fields)
        polling = list(Source.objects.filter(pk__in=list(histories)).exclude(mode="event").values_list("pk", flat=True))
        PollRun.objects.bulk_create(
            PollRun(
                source_id=source_id,
                trigger=PollTrigger.SCHEDULE,
                status=PollStatus.SUCCEEDED,
                started_at=_at(now - 0.5),
                finished_at=_at(now - 0.4),
                caught_up=True,
            )
            for source_id in polling
        )
        judge_sources(list(Source.objects.filter(pk__in=list(histories)).select_related("stream")), now=now)


def test_an_ab_between_two_hysteresis_versions_promotes_the_one_that_detects_outages_sooner(alice: Persona) -> None:
    client = alice.client()
    start = time.time() - 600.0  # the simulation's clock: ten minutes ago up to about now
    with tenant_context(alice.tenant):
        for name in get_redis().keys(key("monitor", "*")):
            get_redis().delete(name)
        ids = []
        for n in range(SOURCES):
            source, _ = make_source(
                f"sim-{n}", config={"poll_url": "http://127.0.0.1:9/changes", "expected_interval_s": 1}
            )
            Source.objects.filter(pk=source.pk).update(created_at=_at(start - 60))
            StreamState.objects.filter(source_id=source.pk).update(expected_interval_s=0.25)
            ids.append(source.pk)
    # given: two versions that differ in a way that matters: 5 bad verdicts in a row to leave event mode, or 2
    slow = client.post(
        "/api/v1/strategy-configs",
        {"config": "failover", "params": {"hysteresis": {**DEMO, "fail_threshold": 5}}, "reason": "baseline"},
        format="json",
    ).json()
    fast = client.post(
        "/api/v1/strategy-configs",
        {"config": "failover", "params": {"hysteresis": {"fail_threshold": 2}}, "reason": "detect sooner"},
        format="json",
    ).json()
    started = client.post(
        "/api/v1/experiments",
        {"name": "fail 5 vs 2", "control": slow["id"], "treatment": fast["id"], "metric": "time_to_detect"},
        format="json",
    )
    assert started.status_code == 201, started.content
    experiment_id = started.json()["id"]
    assert started.json()["arms"] == {"control": 12, "treatment": 12}
    with tenant_context(alice.tenant):
        Experiment.objects.filter(pk=experiment_id).update(started_at=timezone.now())
        # when: four outage cycles, each source its own seed
        histories = {source_id: history(SCENARIO, seed=source_id, loops=4) for source_id in ids}
        _play(histories, start=start)
        experiment = services.experiment_evaluate(experiment=Experiment.objects.get(pk=experiment_id))
        switches = ModeSwitch.objects.filter(source_id__in=ids, transition="degrade")
        stamped = set(switches.values_list("strategy_version_id", flat=True))
    # then: every switch names the version that decided it, and the test found the faster detector
    assert stamped == {slow["id"], fast["id"]}
    assert experiment.status == ExperimentStatus.AWAITING_APPROVAL, experiment.result
    result = client.get(f"/api/v1/experiments/{experiment_id}").json()["result"]
    assert result["significant"] and result["p_value"] < 0.05
    assert result["control_n"] >= 20 and result["treatment_n"] >= 20
    assert result["effect"] < 0 and result["ci_high"] < 0  # the treatment detects sooner, by the whole interval
    # when: the operator approves
    promoted = client.post(f"/api/v1/experiments/{experiment_id}/promote", {}, format="json")
    # then: the treatment is the tenant default and every source runs it
    assert promoted.status_code == 200 and promoted.json()["status"] == "promoted"
    with tenant_context(alice.tenant):
        assert TenantStrategy.objects.get(pk=1).default_version_id == fast["id"]
        rows = list(Source.objects.filter(pk__in=ids).values_list("strategy_version_id", "hysteresis"))
    assert {version for version, _ in rows} == {fast["id"]}
    assert {h["fail_threshold"] for _, h in rows} == {2}
