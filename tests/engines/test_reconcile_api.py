"""The reconcile and reconciliations endpoints (docs/contract.md §3), in the test transaction."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django_tenants.utils import tenant_context

from engines.models import ReconcileTrigger, ReconciliationRun
from engines.reconcile.engine import reconcile_execute
from engines.reconcile.runs import reconcile_request
from simulator.runner import SimulatorHandle, start_in_thread
from tests.conftest import Persona
from tests.engines.reconcile_support import data, mirror, source_on

CONTRACT_FIELDS = {
    "id", "status", "started_at", "finished_at", "upstream_count", "local_count",
    "missing", "changed", "deleted", "corrections",
}  # fmt: skip


@pytest.fixture
def upstream() -> Iterator[SimulatorHandle]:
    with start_in_thread() as handle:
        yield handle


def test_reconcile_answers_202_with_a_new_run(alice: Persona, upstream: SimulatorHandle) -> None:
    # given
    with tenant_context(alice.tenant):
        source = source_on(upstream.base_url)
    # when
    response = alice.client().post(f"/api/v1/sources/{source.pk}/reconcile")
    # then
    assert response.status_code == 202
    body = response.json()
    assert (body["status"], body["queued"]) == ("running", True)
    with tenant_context(alice.tenant):
        run = ReconciliationRun.objects.get(pk=body["run"])
    assert (run.source_id, run.trigger) == (source.pk, "manual")


def test_reconcile_while_a_run_is_running_answers_with_that_run(alice: Persona, upstream: SimulatorHandle) -> None:
    # given
    with tenant_context(alice.tenant):
        source = source_on(upstream.base_url)
        running, _ = reconcile_request(source=source, trigger=ReconcileTrigger.SCHEDULE)
    # when
    response = alice.client().post(f"/api/v1/sources/{source.pk}/reconcile")
    # then
    assert response.status_code == 202
    assert response.json() == {"run": running.pk, "status": "running", "queued": False}
    with tenant_context(alice.tenant):
        assert ReconciliationRun.objects.filter(source=source).count() == 1


def test_reconcile_of_a_source_without_a_snapshot_is_a_422(alice: Persona) -> None:
    body = {"name": "feed-only", "connector": "http", "config": {"poll_url": "http://127.0.0.1:9/changes"}}
    source_id = alice.client().post("/api/v1/sources", body, format="json").json()["id"]
    response = alice.client().post(f"/api/v1/sources/{source_id}/reconcile")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_reconciliations_list_newest_first_with_the_contract_fields(alice: Persona, upstream: SimulatorHandle) -> None:
    # given: two finished runs, the second one repaired a change
    upstream.dataset.seed_records(10)
    with tenant_context(alice.tenant):
        source = source_on(upstream.base_url)
        mirror(source.pk, upstream.dataset)
        for _ in range(2):
            run, _ = reconcile_request(source=source, trigger=ReconcileTrigger.MANUAL)
            reconcile_execute(run_id=run.pk)
            upstream.dataset.upsert("rec-000001", data(3), silent=True)
    # when
    first = alice.client().get(f"/api/v1/sources/{source.pk}/reconciliations?limit=1")
    second = alice.client().get(
        f"/api/v1/sources/{source.pk}/reconciliations?limit=1&cursor={first.json()['next_cursor']}"
    )
    # then
    assert first.status_code == 200
    [newest] = first.json()["results"]
    [older] = second.json()["results"]
    assert newest["id"] > older["id"]
    assert set(newest) >= CONTRACT_FIELDS
    assert (newest["status"], newest["upstream_count"], newest["local_count"]) == ("succeeded", 10, 10)
    assert {"digest_root", "pages_fetched", "records_fetched", "duration_ms", "error", "mode"} <= set(newest)
    assert second.json()["next_cursor"] is None


def test_another_tenants_source_is_a_404_on_both_endpoints(
    alice: Persona, charlie: Persona, upstream: SimulatorHandle
) -> None:
    with tenant_context(alice.tenant):
        source = source_on(upstream.base_url)
    assert charlie.client().post(f"/api/v1/sources/{source.pk}/reconcile").status_code == 404
    assert charlie.client().get(f"/api/v1/sources/{source.pk}/reconciliations").status_code == 404
    with tenant_context(alice.tenant):
        assert not ReconciliationRun.objects.filter(source=source).exists()
