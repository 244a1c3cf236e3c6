"""`push.expected` false: an upstream without webhooks is polled only, and its silence is never a failure."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from console.services import ActionError, source_force_mode
from engines.dispatch import monitor_claim_pass
from engines.models import ModeSwitch, Source, StreamState
from healing.models import FailureRecord, FailureStatus
from healing.recovery import failures_resolve_recovered
from healing.services import stream_failure_report
from scheduling.models import SourceSchedule
from tests.conftest import Persona
from tests.factories import make_source, source_spec


def test_a_source_without_webhooks_starts_in_polling_and_is_never_scheduled_for_judgement(alice: Persona) -> None:
    # when
    body = (
        alice.client().post("/api/v1/sources", source_spec("no-hooks", push={"expected": False}), format="json").json()
    )
    # then
    assert body["mode"] == "polling"
    assert body["push"]["expected"] is False
    assert alice.client().get(f"/api/v1/sources/{body['id']}/health").json()["mode"] == "polling"
    row = SourceSchedule.objects.get(pk=body["id"])
    assert row.next_eval_at is None
    assert row.next_poll_at is not None  # polled at once


def test_an_existing_source_shows_it_expects_pushes(alice: Persona) -> None:
    body = alice.client().post("/api/v1/sources", source_spec("hooks"), format="json").json()
    with tenant_context(alice.tenant):
        Source.objects.filter(pk=body["id"]).update(push={"scheme": "beastflow"})  # stored before the field
    assert alice.client().get(f"/api/v1/sources/{body['id']}").json()["push"]["expected"] is True


def test_pushes_arriving_do_not_bring_it_out_of_polling(in_acme: object) -> None:
    # given: a polling-only source that receives good pushes anyway, woken for judgement
    source, _ = make_source("polled", push={"expected": False}, config={"poll_url": "http://127.0.0.1:9/changes"})
    SourceSchedule.objects.update(next_eval_at=None)
    StreamState.objects.filter(source=source).update(last_push_at=timezone.now(), events_total=50)
    SourceSchedule.objects.filter(pk=source.pk).update(next_eval_at=timezone.now() - timedelta(seconds=1))
    # when
    judged = monitor_claim_pass(budget_s=10, batch=10, lease_s=30)
    # then: claimed, not judged, out of the schedule; still in polling with no verdict counted
    assert judged == 0
    assert SourceSchedule.objects.get(pk=source.pk).next_eval_at is None
    after = Source.objects.get(pk=source.pk)
    assert after.mode == "polling"
    assert after.hysteresis_state == {}


def test_turning_push_off_moves_the_source_to_polling_and_closes_its_push_failures(alice: Persona) -> None:
    # given: a source in event mode whose push went silent
    body = alice.client().post("/api/v1/sources", source_spec("went-quiet"), format="json").json()
    with tenant_context(alice.tenant):
        Source.objects.filter(pk=body["id"]).update(health_score=12, verdict="bad")
        stream_failure_report(source_id=body["id"], health={"penalties": {}}, signals={}, reason="silent")
        assert FailureRecord.objects.filter(source_id=body["id"], status=FailureStatus.OPEN).count() == 1
    # when
    patched = alice.client().patch(f"/api/v1/sources/{body['id']}", {"push": {"expected": False}}, format="json")
    # then
    assert patched.status_code == 200, patched.json()
    assert patched.json()["mode"] == "polling"
    health = alice.client().get(f"/api/v1/sources/{body['id']}/health").json()
    assert (health["health_score"], health["verdict"]) == (100, None)  # the push stream's judgement is gone
    with tenant_context(alice.tenant):
        switch = ModeSwitch.objects.get(source_id=body["id"])
        assert (switch.from_mode, switch.to_mode, switch.actor) == ("event", "polling", "api")
        assert failures_resolve_recovered() == 1
        failure = FailureRecord.objects.get(source_id=body["id"])
        assert failure.status == FailureStatus.RESOLVED
        assert failure.resolved_by == "push_not_expected"
        assert failure.detail["resolution"]["push_expected"] is False
    # and back: expecting pushes again, it is judged again (the way back to event is the monitor's)
    SourceSchedule.objects.filter(pk=body["id"]).update(next_eval_at=None)
    again = alice.client().patch(f"/api/v1/sources/{body['id']}", {"push": {"expected": True}}, format="json")
    assert again.json()["mode"] == "polling"
    assert SourceSchedule.objects.get(pk=body["id"]).next_eval_at is not None


def test_an_operator_cannot_force_a_source_without_webhooks_onto_push(in_acme: object) -> None:
    source, _ = make_source("polled-only", push={"expected": False})
    with pytest.raises(ActionError, match="expects no push"):
        source_force_mode(source=source, actor="dana", to="event", reason="try push")
    assert Source.objects.get(pk=source.pk).mode == "polling"
