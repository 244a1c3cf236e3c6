"""/readyz and /metrics tell whether the work keeps up: the monitor's lag and each queue's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.utils import timezone
from django_tenants.utils import tenant_context

from beastflow.health_checks import worker_heartbeat_key
from beastflow.redis_client import get_redis
from beastflow.tasks import tenant_echo_task
from scheduling.health_checks import monitor_lag
from scheduling.models import SourceSchedule
from scheduling.queues import _broker_key, queue_states
from tests.conftest import Persona
from tests.factories import make_source

IDLE_QUEUE = "bf-test-nobody-consumes"


@pytest.fixture
def workers(db: None) -> Iterator[None]:
    """A worker heartbeat as fresh as a live worker's; the previous one put back afterwards."""
    client = get_redis()
    before = client.get(worker_heartbeat_key())
    client.set(worker_heartbeat_key(), str(time.time()), ex=600)
    yield
    if before is None:
        client.delete(worker_heartbeat_key())
    else:
        client.set(worker_heartbeat_key(), before, ex=600)


def test_a_monitor_behind_its_deadlines_fails_readiness_only_while_workers_run(alice: Persona) -> None:
    # given: one source overdue by ten minutes, nothing else due
    SourceSchedule.objects.update(next_eval_at=None)
    with tenant_context(alice.tenant):
        source, _ = make_source("overdue")
    SourceSchedule.objects.filter(pk=source.pk).update(next_eval_at=timezone.now() - timedelta(minutes=10))
    get_redis().delete(worker_heartbeat_key())
    # when / then: no worker at all (the `workers` component says so): reported, not critical
    report = monitor_lag()
    assert (report.ok, report.critical) == (False, False)
    assert report.details["due_sources"] == 1 and float(report.details["oldest_due_s"]) >= 599
    # and with a worker alive, the monitor being behind makes the service not ready
    get_redis().set(worker_heartbeat_key(), str(time.time()), ex=60)
    try:
        report = monitor_lag()
        assert (report.ok, report.critical) == (False, True)
        with override_settings(BEASTFLOW_READY_MONITOR_LAG_S=3600.0):
            assert monitor_lag().ok
    finally:
        get_redis().delete(worker_heartbeat_key())


def test_readyz_names_a_queue_whose_oldest_message_waited_too_long(workers: None) -> None:
    queues = (*settings.BEASTFLOW_QUEUES, IDLE_QUEUE)
    client = get_redis()
    try:
        with override_settings(BEASTFLOW_QUEUES=queues, BEASTFLOW_READY_QUEUE_LAG_S=0.3):
            # given: a message in a queue no worker consumes
            tenant_echo_task.apply_async(args=("readiness",), queue=IDLE_QUEUE)
            [state] = [s for s in queue_states() if s.name == IDLE_QUEUE]
            assert state.depth == 1
            # when: it has waited past the bound
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                response = Client().get("/readyz")
                if response.status_code == 503 and "queues" in response.json()["failing"]:
                    break
                time.sleep(0.1)
            # then
            body = response.json()
            assert response.status_code == 503, body
            assert IDLE_QUEUE in body["components"]["queues"]["late"]
            assert body["components"]["queues"][IDLE_QUEUE]["depth"] == 1
            assert body["components"]["queues"][IDLE_QUEUE]["oldest_s"] >= 0.3  # shown rounded
    finally:
        client.delete(_broker_key(IDLE_QUEUE))


def test_metrics_expose_the_monitor_lag_and_each_queues_depth_and_lag(db: None) -> None:
    text = Client(HTTP_HOST="127.0.0.1").get("/metrics").content.decode()
    assert "beastflow_monitor_lag_seconds " in text
    assert "beastflow_monitor_due_sources " in text
    for queue in ("monitor", "polls", "reconcile", "healing", "callbacks", "celery"):
        assert f'beastflow_queue_depth{{queue="{queue}"}}' in text
        assert f'beastflow_queue_lag_seconds{{queue="{queue}"}}' in text
