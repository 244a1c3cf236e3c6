"""The healing-actions endpoints (docs/contract.md §7): list, approve, reject."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from engines.models import ReconcileStatus, ReconciliationRun, Source
from engines.reconcile.engine import reconcile_execute
from healing.models import HealingAction
from simulator.runner import SimulatorHandle, start_in_thread
from tests.conftest import Persona
from tests.engines.reconcile_support import data, local_state, mirror, run_now, source_on, upstream_state

CONTRACT_FIELDS = {
    "id", "source", "rca", "strategy", "risk", "status", "requested_at", "decided_by", "decided_at", "outcome",
}  # fmt: skip


@pytest.fixture
def upstream() -> Iterator[SimulatorHandle]:
    with start_in_thread() as handle:
        yield handle


def _held(persona: Persona, upstream: SimulatorHandle, name: str = "orders") -> tuple[Source, HealingAction]:
    """A source whose reconciliation was held by the cap: 5 of 10 records changed upstream."""
    upstream.dataset.seed_records(10)
    with tenant_context(persona.tenant):
        source = source_on(upstream.base_url, name)
        mirror(source.pk, upstream.dataset)
        for n in range(5):
            upstream.dataset.upsert(f"rec-{n:06d}", data(n), silent=True)
        assert run_now(source).status == ReconcileStatus.AWAITING_APPROVAL
        return source, HealingAction.objects.get(source=source)


def test_a_held_reconciliation_is_listed_awaiting_approval_with_its_diff(
    alice: Persona, upstream: SimulatorHandle
) -> None:
    # given
    source, action = _held(alice, upstream)
    # when
    body = alice.client().get("/api/v1/healing-actions").json()
    # then
    [item] = body["results"]
    assert set(item) >= CONTRACT_FIELDS
    assert (item["id"], item["source"], item["rca"]) == (action.pk, source.pk, None)
    assert (item["strategy"], item["risk"], item["status"]) == ("full_reconcile", "high", "awaiting_approval")
    assert (item["decided_by"], item["decided_at"], item["outcome"]) == (None, None, None)
    assert item["detail"]["changed"] == 5 and item["detail"]["hold_reason"] == "change_ratio"
    assert body["next_cursor"] is None


def test_approving_re_runs_the_reconciliation_and_records_who_and_why(
    alice: Persona, upstream: SimulatorHandle
) -> None:
    # given
    source, action = _held(alice, upstream)
    # when
    response = alice.client().post(
        f"/api/v1/healing-actions/{action.pk}/approve", {"reason": "upstream fixed a bug"}, format="json"
    )
    # then: approved, and the held run is running again
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["reason"]) == ("approved", "upstream fixed a bug")
    assert body["decided_by"].startswith("api_key:") and body["decided_at"]
    with tenant_context(alice.tenant):
        run = ReconciliationRun.objects.get(pk=action.detail["run"])
        assert run.status == ReconcileStatus.RUNNING
        # when the worker takes it (the queued task never leaves this test's transaction)
        done = reconcile_execute(run_id=run.pk)
        assert done is not None and (done.status, done.corrections) == ("succeeded", 5)
        assert local_state(source.pk) == upstream_state(upstream.dataset)
    final = alice.client().get(f"/api/v1/healing-actions/{action.pk}").json()
    assert final["status"] == "succeeded" and final["outcome"]["corrections"] == 5


def test_rejecting_needs_a_reason_and_fails_the_held_run(alice: Persona, upstream: SimulatorHandle) -> None:
    # given
    source, action = _held(alice, upstream)
    # when
    without = alice.client().post(f"/api/v1/healing-actions/{action.pk}/reject", {}, format="json")
    response = alice.client().post(
        f"/api/v1/healing-actions/{action.pk}/reject", {"reason": "planned migration"}, format="json"
    )
    # then
    assert without.status_code == 400
    assert without.json()["errors"][0]["field"] == "reason"
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["reason"]) == ("rejected", "planned migration")
    with tenant_context(alice.tenant):
        run = ReconciliationRun.objects.get(pk=action.detail["run"])
        assert (run.status, run.error_kind) == ("failed", "rejected")
        assert run.error.endswith(": planned migration")
        assert len(local_state(source.pk)) == 10


def test_a_decided_action_cannot_be_decided_again(alice: Persona, upstream: SimulatorHandle) -> None:
    _, action = _held(alice, upstream)
    rejected = alice.client().post(f"/api/v1/healing-actions/{action.pk}/reject", {"reason": "no"}, format="json")
    assert rejected.status_code == 200
    again = alice.client().post(f"/api/v1/healing-actions/{action.pk}/approve", {}, format="json")
    assert again.status_code == 409
    assert "rejected" in again.json()["detail"]


def test_approving_while_another_run_of_the_source_is_running_is_a_409_and_changes_nothing(
    alice: Persona, upstream: SimulatorHandle
) -> None:
    # given
    source, action = _held(alice, upstream)
    with tenant_context(alice.tenant):
        now = timezone.now()
        ReconciliationRun.objects.create(source=source, trigger="manual", started_at=now, heartbeat_at=now)
    # when
    response = alice.client().post(f"/api/v1/healing-actions/{action.pk}/approve", {}, format="json")
    # then
    assert response.status_code == 409
    with tenant_context(alice.tenant):
        action.refresh_from_db()
        assert (action.status, action.decided_by) == ("awaiting_approval", "")


def test_the_list_filters_by_source_and_status_and_pages_newest_first(
    alice: Persona, upstream: SimulatorHandle
) -> None:
    # given: two held sources, one of them rejected
    first, first_action = _held(alice, upstream, "first")
    upstream.dataset.reset()
    second, second_action = _held(alice, upstream, "second")
    alice.client().post(f"/api/v1/healing-actions/{first_action.pk}/reject", {"reason": "no"}, format="json")
    client = alice.client()
    # when / then
    page = client.get("/api/v1/healing-actions?limit=1").json()
    assert [item["id"] for item in page["results"]] == [second_action.pk]
    rest = client.get(f"/api/v1/healing-actions?limit=1&cursor={page['next_cursor']}").json()
    assert [item["id"] for item in rest["results"]] == [first_action.pk]
    by_source = client.get(f"/api/v1/healing-actions?source={first.pk}").json()["results"]
    assert [item["id"] for item in by_source] == [first_action.pk]
    waiting = client.get("/api/v1/healing-actions?status=awaiting_approval").json()["results"]
    assert [item["id"] for item in waiting] == [second_action.pk]
    assert client.get("/api/v1/healing-actions?status=bogus").status_code == 400
    assert second.pk != first.pk


def test_another_tenants_actions_are_invisible_and_undecidable(
    alice: Persona, charlie: Persona, upstream: SimulatorHandle
) -> None:
    # given
    source, action = _held(alice, upstream)
    client = charlie.client()
    # then
    assert client.get("/api/v1/healing-actions").json()["results"] == []
    assert client.get(f"/api/v1/healing-actions/{action.pk}").status_code == 404
    assert client.post(f"/api/v1/healing-actions/{action.pk}/approve", {}, format="json").status_code == 404
    assert client.post(f"/api/v1/healing-actions/{action.pk}/reject", {"reason": "x"}, format="json").status_code == 404
    assert client.get(f"/api/v1/healing-actions?source={source.pk}").status_code == 404
    with tenant_context(alice.tenant):
        action.refresh_from_db()
        assert action.status == "awaiting_approval"
