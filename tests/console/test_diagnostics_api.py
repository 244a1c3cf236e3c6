"""GET /api/v1/sources/{id}/diagnostics and GET /api/v1/audit: the bundle, the filters, tenant isolation."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django_tenants.utils import tenant_context

from console.services import source_force_mode
from engines.models import PollRun, PollStatus, PollTrigger, Source
from healing.models import HealingAction, HealingRisk, HealingStatus, HealingStrategy, RCAResult
from healing.services import failure_report
from tests.conftest import Persona
from tests.factories import make_source


def _troubled_source(persona: Persona) -> Source:
    """A source in polling for two hours whose last poll was refused, with an open failure analysed by RCA."""
    with tenant_context(persona.tenant):
        source, _ = make_source("troubled")
        Source.objects.filter(pk=source.pk).update(mode="polling", mode_since=timezone.now() - timedelta(hours=2))
        now = timezone.now()
        PollRun.objects.create(
            source=source,
            trigger=PollTrigger.SCHEDULE,
            status=PollStatus.FAILED,
            started_at=now,
            finished_at=now,
            error_kind="auth_failed",
            error="GET http://upstream/changes: HTTP 401",
            http_status=401,
        )
        failure = failure_report(kind="auth_failed", source_id=source.pk, detail={"http_status": 401})
        assert failure is not None
        RCAResult.objects.create(
            failure=failure, source=source, category="auth_failure", confidence=0.93, rules_version="test"
        )
        source.refresh_from_db()
        return source


def test_the_diagnostics_bundle_says_what_is_wrong_and_what_to_do(alice: Persona) -> None:
    # given
    source = _troubled_source(alice)
    # when
    response = alice.client().get(f"/api/v1/sources/{source.pk}/diagnostics")
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["source"]["id"] == source.pk and body["source"]["name"] == "troubled"
    assert body["mode"]["mode"] == "polling" and body["mode"]["seconds_in_mode"] > 7000
    assert "fail_threshold" in body["mode"]["hysteresis_policy"]
    assert body["health"]["mode"] == "polling"
    assert body["polls"][0]["error_kind"] == "auth_failed"
    [failure] = body["failures"]
    assert failure["kind"] == "auth_failed" and failure["rca"]["category"] == "auth_failure"
    assert body["next_step"]["action"] == "fix_credentials"
    assert isinstance(body["signals"], list) and isinstance(body["switches"], list)


def test_an_awaiting_healing_action_comes_first(alice: Persona) -> None:
    source = _troubled_source(alice)
    with tenant_context(alice.tenant):
        action = HealingAction.objects.create(
            source=source,
            strategy=HealingStrategy.FULL_RECONCILE,
            risk=HealingRisk.HIGH,
            status=HealingStatus.AWAITING_APPROVAL,
            requested_at=timezone.now(),
        )
    body = alice.client().get(f"/api/v1/sources/{source.pk}/diagnostics").json()
    assert [a["id"] for a in body["healing_actions_awaiting"]] == [action.pk]
    assert body["next_step"]["action"] == "decide_healing_action"


def test_another_tenants_source_is_a_404_for_diagnostics_and_audit(alice: Persona, charlie: Persona) -> None:
    source = _troubled_source(alice)
    for path in (f"/api/v1/sources/{source.pk}/diagnostics", f"/api/v1/audit?source={source.pk}"):
        response = charlie.client().get(path)
        assert response.status_code == 404, path
        assert response["Content-Type"] == "application/problem+json"
    assert charlie.client().get("/api/v1/sources/999999999/diagnostics").status_code == 404


def test_the_audit_timeline_filters_like_the_console_and_pages(alice: Persona, charlie: Persona) -> None:
    # given: a failure and two operator switches on one source, a switch on another
    source = _troubled_source(alice)
    with tenant_context(alice.tenant):
        other, _ = make_source("other")
        source_force_mode(source=source, actor="alice", to="event", reason="upstream fixed")
        source_force_mode(source=Source.objects.get(pk=source.pk), actor="alice", to="polling", reason="again")
        source_force_mode(source=other, actor="alice", to="polling", reason="elsewhere")
    client = alice.client()
    # when: switches of one source only
    body = client.get(f"/api/v1/audit?source={source.pk}&kind=mode_switch").json()
    # then
    assert [(e["kind"], e["title"]) for e in body["results"]] == [
        ("mode_switch", "event → polling"),
        ("mode_switch", "polling → event"),
    ]
    assert all(e["source"] == source.pk and e["source_name"] == "troubled" for e in body["results"])
    assert body["results"][0]["actor"] == "alice"
    # and: several kinds, paged one entry at a time through the cursor
    seen, cursor = [], None
    while True:
        query = f"/api/v1/audit?source={source.pk}&kind=mode_switch,failure&limit=1" + (
            f"&cursor={cursor}" if cursor else ""
        )
        page = client.get(query.replace("+", "%2B")).json()
        seen += [(e["kind"], e["at"]) for e in page["results"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(kind for kind, _ in seen) == ["failure", "mode_switch", "mode_switch"]
    assert [at for _, at in seen] == sorted((at for _, at in seen), reverse=True)
    # and: the other tenant sees none of it
    theirs = charlie.client().get("/api/v1/audit?window=all").json()["results"]
    assert all(e["source_name"] not in ("troubled", "other") for e in theirs)


def test_unreadable_audit_filters_are_a_400_naming_each_field(alice: Persona) -> None:
    response = alice.client().get("/api/v1/audit?kind=nope&window=2d&source=x&limit=0&cursor=yesterday")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert {e["field"] for e in response.json()["errors"]} == {"kind", "window", "source", "limit", "cursor"}
