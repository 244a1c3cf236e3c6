"""From a failure to a healed source: queue, RCA, strategy, verification, approval, escalation."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.test import override_settings
from django.utils import timezone
from django_tenants.utils import tenant_context

from engines.models import Source
from healing import healer
from healing.approvals import escalations_run
from healing.healer import actions_verify
from healing.models import (
    FailureRecord,
    FailureStatus,
    HealingAction,
    HealingStatus,
    RCAResult,
    StrategyStats,
)
from healing.queue import queue_claim, queue_process
from healing.services import failure_report, failure_resolve
from tests.conftest import Persona
from tests.factories import make_source

pytestmark = pytest.mark.usefixtures("in_acme")


def _host() -> str:
    return f"http://up-{uuid.uuid4().hex[:8]}:9001"


def _source(host: str) -> Source:
    source, _ = make_source(
        f"s-{uuid.uuid4().hex[:6]}", config={"poll_url": f"{host}/changes", "snapshot_url": f"{host}/snapshot"}
    )
    return source


def _stats(category: str, strategy: str) -> tuple[int, int]:
    """(successes, failures) so far: scenario runs on a reused test database leave theirs committed."""
    row = StrategyStats.objects.filter(category=category, strategy=strategy).first()
    return (row.successes, row.failures) if row else (0, 0)


def _report(source: Source, kind: str, host: str, **detail: Any) -> FailureRecord:
    record = failure_report(
        kind=kind,
        source_id=source.pk,
        identity={"host": host, "kind": kind, "status": detail.get("http_status")},
        detail={"host": host, **detail},
    )
    assert record is not None
    return record


def test_a_failure_reported_for_a_source_deleted_meanwhile_is_dropped_not_stored() -> None:
    from engines.sources import source_delete

    # given: an engine still working on a source an operator just deleted
    host = _host()
    source = _source(host)
    source_id = source.pk
    source_delete(source=source)
    # when
    record = failure_report(kind="upstream_unavailable", source_id=source_id, detail={"host": host})
    # then
    assert record is None
    assert not FailureRecord.objects.filter(source_id=source_id).exists()


def test_a_repeated_failure_folds_into_occurrences_with_a_priority_from_severity_and_tier() -> None:
    # given
    host = _host()
    source = _source(host)
    # when
    first = _report(source, "auth_failed", host, http_status=401)
    again = _report(source, "auth_failed", host, http_status=401)
    # then
    assert first.pk == again.pk and again.occurrences == 2
    assert (again.severity, again.priority) == (5, 10)  # acme is on the standard tier (x2)


def test_the_queue_takes_the_most_severe_failures_first() -> None:
    # given
    host = _host()
    source = _source(host)
    low = _report(source, "rate_limited", host, http_status=429)
    high = _report(source, "auth_failed", host, http_status=401)
    # when
    order = [pk for pk in queue_claim(limit=500) if pk in (low.pk, high.pk)]
    # then
    assert order == [high.pk, low.pk]


def test_a_rate_limit_is_explained_and_slowed_down_automatically_and_the_success_is_learned() -> None:
    # given
    host = _host()
    source = _source(host)
    failure = _report(source, "rate_limited", host, http_status=429, retry_after_s=5)
    successes, failures = _stats("rate_limited", "slow_polling")
    # when
    queue_process()
    # then: explained
    rca = RCAResult.objects.get(failure=failure)
    assert (rca.category, rca.rule) == ("rate_limited", "rate_limited.direct@1")
    assert "429" in rca.evidence[0]["text"]
    # and: healed without a person
    action = HealingAction.objects.get(failure=failure)
    assert (action.strategy, action.status, action.decided_by) == ("slow_polling", "running", healer.AUTOMATIC)
    source.refresh_from_db()
    assert source.poll["min_interval_s"] == 5.0
    # when: the next poll works (the engine closes the failure), and verification runs
    failure_resolve(source_id=source.pk, kind="rate_limited")
    actions_verify()
    # then
    action.refresh_from_db()
    assert action.status == "succeeded" and "resolved" in action.outcome["verified"]
    assert _stats("rate_limited", "slow_polling") == (successes + 1, failures)
    assert list(action.events.values_list("kind", flat=True)) == ["approved", "started", "succeeded"]


def test_a_strategy_that_did_not_help_in_its_window_counts_as_failed_and_the_next_one_is_tried() -> None:
    # given
    host = _host()
    source = _source(host)
    failure = _report(source, "upstream_timeout", host)
    queue_process()
    first = HealingAction.objects.get(failure=failure)
    _, failed_before = _stats("upstream_timeout", first.strategy)
    # when: the window passes with the failure still open
    actions_verify(now=timezone.now() + timedelta(hours=1))
    queue_process()
    # then
    first.refresh_from_db()
    assert first.status == "failed"
    assert _stats("upstream_timeout", first.strategy)[1] == failed_before + 1
    second = HealingAction.objects.filter(failure=failure).exclude(pk=first.pk).get()
    assert second.strategy != first.strategy
    failure.refresh_from_db()
    assert failure.attempts == 1


@override_settings(BEASTFLOW_ESCALATION_EMAILS=[["oncall@acme.test"], ["lead@acme.test"], ["cto@acme.test"]])
def test_a_credential_failure_waits_for_an_operator_and_nothing_runs_before(
    alice: Persona, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    host = _host()
    source = _source(host)
    failure = _report(source, "auth_failed", host, http_status=401)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        queue_process()
    # then: a risky action waits, and level 0 was told
    action = HealingAction.objects.get(failure=failure)
    assert action.status == "awaiting_approval" and action.risk == "high"
    assert action.next_escalation_at is not None
    source.refresh_from_db()
    assert source.paused is False
    assert [m.to for m in mail.outbox] == [["oncall@acme.test"]]
    # when: nobody answers in time
    escalations_run(now=action.next_escalation_at + timedelta(seconds=1))
    # then
    action.refresh_from_db()
    assert (action.status, action.escalation_level) == ("escalated", 1)
    assert mail.outbox[-1].to == ["lead@acme.test"]
    # when: an operator approves, through the API
    response = alice.client().post(
        f"/api/v1/healing-actions/{action.pk}/approve", {"reason": "rotating the upstream token"}, format="json"
    )
    # then
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "running" and body["reason"] == "rotating the upstream token"
    assert body["decided_by"].startswith("api_key:")
    kinds = [e["kind"] for e in body["events"]]
    assert kinds[:3] == ["requested", "escalated", "approved"] and "started" in kinds
    with tenant_context(alice.tenant):  # the request left the connection on the public schema
        source.refresh_from_db()
    if action.strategy == "pause_source":
        assert source.paused


def test_a_rejected_action_never_runs_and_keeps_who_and_why(alice: Persona) -> None:
    # given
    host = _host()
    source = _source(host)
    failure = _report(source, "schema_invalid", host, error="event 3: key missing")
    queue_process()
    action = HealingAction.objects.get(failure=failure)
    assert action.status == "awaiting_approval"
    # when
    response = alice.client().post(
        f"/api/v1/healing-actions/{action.pk}/reject", {"reason": "upstream fixes it"}, format="json"
    )
    # then
    assert response.status_code == 200
    with tenant_context(alice.tenant):
        action.refresh_from_db()
        assert (action.status, action.reason) == (HealingStatus.REJECTED, "upstream fixes it")
        assert action.outcome is None and action.events.filter(kind="started").count() == 0
        source.refresh_from_db()
        assert not source.paused
    # and a second decision is refused
    again = alice.client().post(f"/api/v1/healing-actions/{action.pk}/approve", {}, format="json")
    assert again.status_code == 409 and again["Content-Type"] == "application/problem+json"


def test_the_same_host_failing_in_two_tenants_is_explained_as_one_upstream_outage(charlie: Persona) -> None:
    # given: globex's source on the same host fails first
    host = _host()
    with tenant_context(charlie.tenant):
        theirs = _source(host)
        _report(theirs, "upstream_unavailable", host, http_status=503)
    ours = _source(host)
    failure = _report(ours, "upstream_unavailable", host, http_status=503)
    # when
    queue_process()
    # then
    rca = RCAResult.objects.get(failure=failure)
    assert rca.category == "upstream_unavailable" and rca.rule == "unavailable.shared_host@1"
    assert rca.features["host_tenants"] == 2
    assert "2 sources in 2 tenants" in rca.evidence[0]["text"]


def test_a_stream_that_is_well_again_closes_its_failure_and_the_action_succeeds() -> None:
    # given: a silent stream, healed by an automatic strategy
    from healing.recovery import failures_resolve_recovered
    from healing.services import stream_failure_report

    host = _host()
    source = _source(host)
    stream_failure_report(
        source_id=source.pk, health={"penalties": {"silence": 100}}, signals={"push_total": 0}, reason="silent"
    )
    failure = FailureRecord.objects.get(source=source, kind="stream_silent")
    queue_process()
    action = HealingAction.objects.get(failure=failure)
    # when: the monitor sees it healthy in event mode again
    Source.objects.filter(pk=source.pk).update(mode="event", verdict="good")
    later = timezone.now() + timedelta(seconds=30)
    failures_resolve_recovered(now=later)
    actions_verify(now=later)
    # then
    failure.refresh_from_db()
    action.refresh_from_db()
    assert (failure.status, failure.resolved_by) == (FailureStatus.RESOLVED, "recovered")
    assert action.status == "succeeded"
