"""Reconciliation with committed rows: pushes racing a run, and runs on a real worker.

These tests commit (other connections must see their rows); the
committed_source fixture deletes the source, and its runs with it, after.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections
from django_tenants.utils import tenant_context

from beastflow.redis_client import get_redis
from engines.models import Change, ReconcileStatus, ReconcileTrigger, ReconciliationRun, Record, Source
from engines.polling import breaker_key
from engines.reconcile.engine import reconcile_execute
from engines.reconcile.runs import ReconcileError, reconcile_request
from engines.tasks import reconciles_dispatch_task
from scheduling.services import source_wake
from simulator.runner import SimulatorHandle, start_in_thread
from tests.conftest import Persona
from tests.engines.reconcile_support import config_for, data, mirror, push
from tests.factories import make_source
from tests.simulator.support import wait_for


@pytest.fixture
def upstream() -> Iterator[SimulatorHandle]:
    with start_in_thread(key_space=10_000) as handle:
        get_redis().delete(breaker_key(f"http://127.0.0.1:{handle.port}"))
        yield handle


def test_a_source_without_a_snapshot_url_cannot_be_reconciled(in_acme: object) -> None:
    # A test on the test transaction (`db`): with it in the file, pytest-django
    # sets up the test database even when this file runs alone; without one,
    # the committed tests below would reach the development database.
    source, _ = make_source("no-snapshot", config={"poll_url": "http://127.0.0.1:9/changes"})
    with pytest.raises(ReconcileError) as caught:
        reconcile_request(source=source, trigger=ReconcileTrigger.MANUAL)
    assert caught.value.status == 422
    assert not ReconciliationRun.objects.filter(source=source).exists()


def _prepare(
    django_db_blocker: Any, tenant: Any, source_id: int, upstream: SimulatorHandle, records: int, **config: Any
) -> None:
    upstream.dataset.seed_records(records)
    with django_db_blocker.unblock(), tenant_context(tenant):
        Source.objects.filter(pk=source_id).update(config=config_for(upstream.base_url, **config))
        mirror(source_id, upstream.dataset)


def test_pushes_committed_during_a_run_are_never_regressed(
    upstream: SimulatorHandle,
    personas: dict[str, Persona],
    committed_source: tuple[int, str],
    django_db_blocker: Any,
) -> None:
    # given: 60 equal records, then silent upstream changes in the snapshot's first page
    # (keys 0-3 changed to v2, keys 4-5 deleted at v2); a slow upstream, 10 records a page
    tenant = personas["alice"].tenant
    source_id = committed_source[0]
    _prepare(django_db_blocker, tenant, source_id, upstream, 60, digests=False, page_limit=10)
    for n in range(4):
        upstream.dataset.upsert(f"rec-{n:06d}", data(100 + n), silent=True)
    for n in (4, 5):
        upstream.dataset.delete(f"rec-{n:06d}", silent=True)
    upstream.faults.update({"latency_ms": 80})
    outcome: list[ReconciliationRun | None] = []
    errors: list[BaseException] = []

    def reconcile() -> None:
        try:
            with tenant_context(tenant):
                # Queued with a countdown: this run commits, so its task reaches the broker, and a
                # session's worker must not claim the run before this thread executes it.
                run, _ = reconcile_request(
                    source=Source.objects.get(pk=source_id), trigger=ReconcileTrigger.MANUAL, countdown=600
                )
                outcome.append(reconcile_execute(run_id=run.pk))
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    # when: the run has compared the first page (its 3rd request is out), pushes land
    with django_db_blocker.unblock():
        worker = threading.Thread(target=reconcile)
        worker.start()
        wait_for(lambda: upstream.sim.requests["snapshot.ok"] >= 3, timeout=10, interval=0.005)
        with tenant_context(tenant):
            push(
                source_id,
                [
                    # newer than the snapshot's v2: the correction to v2 must not win
                    {"id": "late-0", "type": "upsert", "key": "rec-000000", "version": 3, "data": {"pushed": 0}},
                    # the very change the snapshot shows, pushed late: one change, not two
                    {"id": "late-1", "type": "upsert", "key": "rec-000001", "version": 2, "data": data(101)},
                    # deleted upstream at v2, then re-created at v3 and pushed: must stay
                    {"id": "late-4", "type": "upsert", "key": "rec-000004", "version": 3, "data": {"pushed": 4}},
                ],
            )
        worker.join(20)
    # then
    assert not errors, errors
    [run] = outcome
    assert run is not None and run.status == ReconcileStatus.SUCCEEDED
    with django_db_blocker.unblock(), tenant_context(tenant):
        state = {
            r.key: (r.version, r.deleted, r.data)
            for r in Record.objects.filter(source_id=source_id, key__in=[f"rec-{n:06d}" for n in range(6)])
        }
        reconciled = set(Change.objects.filter(source_id=source_id, origin="reconcile").values_list("key", "version"))
        pushed_changes = Change.objects.filter(source_id=source_id, key="rec-000001", version=2).count()
    assert state["rec-000000"] == (3, False, {"pushed": 0})
    assert state["rec-000001"] == (2, False, data(101))
    assert state["rec-000004"] == (3, False, {"pushed": 4})
    assert state["rec-000002"][:2] == state["rec-000003"][:2] == (2, False)
    assert state["rec-000005"][:2] == (2, True)
    assert reconciled == {("rec-000002", 2), ("rec-000003", 2), ("rec-000005", 2)}
    assert pushed_changes == 1
    assert run.corrections == 3


def test_a_reconcile_requested_through_the_api_runs_on_a_worker(
    upstream: SimulatorHandle,
    personas: dict[str, Persona],
    committed_source: tuple[int, str],
    django_db_blocker: Any,
    celery_worker: None,
) -> None:
    # given
    alice = personas["alice"]
    source_id = committed_source[0]
    _prepare(django_db_blocker, alice.tenant, source_id, upstream, 30)
    upstream.dataset.upsert("rec-000001", data(5), silent=True)
    # when
    with django_db_blocker.unblock():
        response = alice.client().post(f"/api/v1/sources/{source_id}/reconcile")
    # then
    assert response.status_code == 202
    run_id = response.json()["run"]

    def finished() -> dict[str, Any] | None:
        with django_db_blocker.unblock():
            body = alice.client().get(f"/api/v1/sources/{source_id}/reconciliations").json()
        # The run's correction is drift, a failure healing may answer with a run of its own
        # (full_reconcile) while a session's beat runs: this test follows the API's run.
        [item] = [item for item in body["results"] if item["id"] == run_id]
        return item if item["status"] != "running" else None

    wait_for(lambda: finished() is not None, timeout=20, interval=0.1)
    item = finished()
    assert item is not None
    assert (item["id"], item["status"], item["changed"], item["corrections"]) == (run_id, "succeeded", 1, 1)
    assert (item["upstream_count"], item["local_count"], item["mode"]) == (30, 30, "digest")
    assert item["records_fetched"] < 30
    assert len(item["digest_root"]) == 64 and item["local_digest_root"] != item["digest_root"]  # it differed


def test_the_beat_entry_starts_due_reconciliations_on_a_worker_in_each_tenant(
    upstream: SimulatorHandle,
    personas: dict[str, Persona],
    committed_source: tuple[int, str],
    django_db_blocker: Any,
    celery_worker: None,
) -> None:
    # given: a source whose interval passed long ago
    tenant = personas["alice"].tenant
    source_id = committed_source[0]
    _prepare(django_db_blocker, tenant, source_id, upstream, 5)
    upstream.dataset.upsert("new", data(1), silent=True)
    with django_db_blocker.unblock(), tenant_context(tenant):
        source = Source.objects.get(pk=source_id)
        Source.objects.filter(pk=source_id).update(
            reconcile={**source.reconcile, "interval_s": 1}, created_at=source.created_at.replace(year=2020)
        )
        # Written behind the engines' back: the schedule must look at the source again.
        source_wake(source_id, reconcile=True)

    def runs() -> list[ReconciliationRun]:
        with django_db_blocker.unblock(), tenant_context(tenant):
            return list(ReconciliationRun.objects.filter(source_id=source_id, status="succeeded"))

    # when: what beat sends, from the public schema
    reconciles_dispatch_task.delay()
    # then
    wait_for(lambda: bool(runs()), timeout=20, interval=0.1)
    run = runs()[0]
    assert (run.trigger, run.missing, run.corrections) == ("schedule", 1, 1)
