"""The healing console in a real browser: RCA review, approvals, and who may decide.

The failures are made by the real services in this process (a failure
report, then the queue's step: RCA and the healer's proposal) and committed,
so that the live server (uvicorn, another process) shows them. No worker or
beat is needed: nothing here waits on a tick. Sync Playwright, so plain
sync tests (see test_browser.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django_tenants.utils import tenant_context

from beastflow.tenancy import use_public
from engines import sources
from engines.models import Source
from healing.models import FailureRecord, HealingAction, HealingEvent, RCAResult
from healing.queue import failure_process
from healing.services import failure_report
from tests.conftest import Persona
from tests.console.browser import console_url, shoot, sign_in
from tests.factories import make_source


@dataclass(frozen=True)
class Incident:
    source_id: int
    rca_id: int
    action_id: int


def _incident(name: str) -> Incident:
    """A source whose upstream refused the credentials, analysed, with a risky action waiting for an operator."""
    # One transaction: a beat left running by another test module (session-scoped) never
    # sees the failure before it is analysed here, so it cannot analyse it too.
    with transaction.atomic():
        source, _ = make_source(name)
        failure = failure_report(
            kind="auth_failed",
            source_id=source.pk,
            # A host of its own: two sources failing on one host would read as an upstream outage.
            detail={"host": f"http://{name}.example:8443", "http_status": 401},
        )
        # queue_claim's step for this failure alone: acme's other failures are not this test's.
        FailureRecord.objects.filter(pk=failure.pk).update(analysis_due=False)
        rca = failure_process(failure.pk)
    assert rca is not None
    action = HealingAction.objects.get(failure=failure)
    assert (action.status, action.risk) == ("awaiting_approval", "high"), "auth_failed no longer asks an operator"
    return Incident(source_id=source.pk, rca_id=rca.pk, action_id=action.pk)


@pytest.fixture
def incidents(personas: dict[str, Persona], django_db_blocker: Any) -> Iterator[list[Incident]]:
    """Two committed incidents in acme, removed (with their failures, RCA and actions) after the test."""
    tenant = personas["alice"].tenant
    made: list[Incident] = []
    with django_db_blocker.unblock(), tenant_context(tenant):
        for _ in range(2):
            made.append(_incident(f"creds-{uuid.uuid4().hex[:8]}"))
    try:
        yield made
    finally:
        with django_db_blocker.unblock(), tenant_context(tenant):
            for source in Source.objects.filter(pk__in=[i.source_id for i in made]):
                sources.source_delete(source=source)
        use_public()


@contextmanager
def acme_rows(personas: dict[str, Persona], django_db_blocker: Any) -> Iterator[None]:
    """Read acme's committed rows from the test process (there is no test transaction here)."""
    with django_db_blocker.unblock(), tenant_context(personas["alice"].tenant):
        yield


def events_of(action_id: int) -> list[tuple[str, str, str]]:
    return list(HealingEvent.objects.filter(action_id=action_id).values_list("kind", "actor", "note"))


def test_an_operator_corrects_an_rca_and_the_audit_trail_says_who(
    incidents: list[Incident],
    page_factory: Any,
    live_server_url: str,
    personas: dict[str, Persona],
    console_users: dict[str, User],
    django_db_blocker: Any,
) -> None:
    # given: the RCA of the first incident, as stored
    incident = incidents[0]
    alice = console_users["alice"]
    with acme_rows(personas, django_db_blocker):
        rca = RCAResult.objects.get(pk=incident.rca_id)
    assert rca.category == "auth_failed" and rca.evidence
    base = console_url(live_server_url, personas["alice"])
    page = page_factory()
    sign_in(page, base, alice, next_path="/rca/")
    # when: alice opens the review
    card = page.locator(f"#rca-{rca.pk}")
    # then: she sees the category and every piece of evidence the rules gave
    assert card.locator("h2").inner_text().startswith("auth_failed")
    evidence = card.locator("ul.evidence").inner_text()
    for item in rca.evidence:
        assert str(item["text"]) in evidence
    shoot(page, "rca-review")
    # when: she corrects it (typing in the form holds the page's live refresh off)
    card.locator("input[name=note]").fill("the proxy, not the credentials")
    card.locator("select[name=category]").select_option("unknown")
    with page.expect_navigation():
        card.get_by_role("button", name="Confirm / correct").click()
    # then: she is told, and the row carries her word
    assert f"Corrected to unknown (RCA {rca.pk})" in page.locator(".messages").inner_text()
    with acme_rows(personas, django_db_blocker):
        rca.refresh_from_db()
    assert (rca.category, rca.confirmed_category) == ("auth_failed", "unknown")
    assert (rca.confirmed_by, rca.confirm_note) == (alice.username, "the proxy, not the credentials")
    assert rca.confirmed_at is not None
    # and the confirmed list and the audit trail say who
    page.goto(f"{base}/rca/?status=confirmed")
    assert f"Confirmed as unknown by {alice.username}" in page.locator(f"#rca-{rca.pk}").inner_text()
    page.goto(f"{base}/audit/?source={incident.source_id}&kind=rca&window=all")
    trail = page.locator("ol.timeline").inner_text()
    assert "corrected as unknown: the proxy, not the credentials" in trail
    assert f"by {alice.username}" in trail


def test_an_operator_approves_one_action_and_rejects_another_with_a_reason(
    incidents: list[Incident],
    page_factory: Any,
    live_server_url: str,
    personas: dict[str, Persona],
    console_users: dict[str, User],
    django_db_blocker: Any,
) -> None:
    # given: two risky actions waiting
    approve, reject = incidents[0].action_id, incidents[1].action_id
    actor = f"user:{console_users['alice'].username}"
    base = console_url(live_server_url, personas["alice"])
    page = page_factory()
    sign_in(page, base, console_users["alice"], next_path="/approvals/")
    assert page.locator(f"#action-{approve}").is_visible() and page.locator(f"#action-{reject}").is_visible()
    shoot(page, "approvals")
    # when: she approves the first, with a reason
    card = page.locator(f"#action-{approve}")
    card.locator("input[name=reason]").fill("credentials are being rotated upstream")
    with page.expect_navigation():
        card.get_by_role("button", name="Approve").click()
    # then: it was decided by her and started at once
    assert f"(action {approve}): it runs now" in page.locator(".messages").inner_text()
    with acme_rows(personas, django_db_blocker):
        approved = HealingAction.objects.get(pk=approve)
        approved_events = events_of(approve)
    assert (approved.status, approved.decided_by) == ("running", actor)
    assert approved.reason == "credentials are being rotated upstream"
    assert [kind for kind, _, _ in approved_events] == ["requested", "approved", "started"]
    assert approved_events[1] == ("approved", actor, "credentials are being rotated upstream")
    # when: she tries to reject the second without saying why
    card = page.locator(f"#action-{reject}")
    with page.expect_navigation():
        card.get_by_role("button", name="Reject").click()
    # then: she is asked for a reason and nothing changed
    assert "Say why you reject it." in page.locator(".messages").inner_text()
    with acme_rows(personas, django_db_blocker):
        assert HealingAction.objects.get(pk=reject).status == "awaiting_approval"
    # when: she rejects it with a reason
    card.locator("input[name=reason]").fill("the vendor fixes it today")
    with page.expect_navigation():
        card.get_by_role("button", name="Reject").click()
    # then: it is rejected, nothing ran, and the trail says who and why
    assert f"(action {reject}): nothing runs" in page.locator(".messages").inner_text()
    with acme_rows(personas, django_db_blocker):
        rejected = HealingAction.objects.get(pk=reject)
        rejected_events = events_of(reject)
    assert (rejected.status, rejected.decided_by, rejected.reason) == ("rejected", actor, "the vendor fixes it today")
    assert rejected_events[1:] == [("rejected", actor, "the vendor fixes it today")]
    # and both show under "Recently decided", no longer waiting
    assert page.locator(f"#action-{approve}, #action-{reject}").count() == 0
    decided = page.locator("table").inner_text()
    assert "the vendor fixes it today" in decided and "credentials are being rotated upstream" in decided


# Posts a decision the way the form would, with the page's CSRF token; resolves with status and body.
POST_DECISION = """async (url) => {
  const token = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  const body = new URLSearchParams({ csrfmiddlewaretoken: token, decision: "approve", reason: "let me" });
  const response = await fetch(url, { method: "POST", body, credentials: "same-origin", redirect: "manual" });
  return [response.status, await response.text()];
}"""


def test_a_viewer_sees_what_waits_but_cannot_approve_it(
    incidents: list[Incident],
    page_factory: Any,
    live_server_url: str,
    personas: dict[str, Persona],
    console_users: dict[str, User],
    django_db_blocker: Any,
) -> None:
    # given: bob may only view acme
    action_id = incidents[0].action_id
    base = console_url(live_server_url, personas["alice"])
    page = page_factory()
    sign_in(page, base, console_users["bob"], next_path="/approvals/")
    # then: he sees the action, without a button to decide it
    card = page.locator(f"#action-{action_id}")
    assert card.is_visible()
    assert card.get_by_role("button", name="Approve").count() == 0
    assert "your role can only look" in card.inner_text()
    # when: he posts the approval anyway
    status, body = page.evaluate(POST_DECISION, f"/approvals/{action_id}/decide")
    # then: refused for his role (not for a missing token), and the action still waits
    assert status == 403
    assert "not act on it" in body
    with acme_rows(personas, django_db_blocker):
        action = HealingAction.objects.get(pk=action_id)
        assert (action.status, action.decided_by) == ("awaiting_approval", "")
        assert [kind for kind, _, _ in events_of(action_id)] == ["requested"]
    # and the RCA review shows him the analysis without the form
    page.goto(f"{base}/rca/")
    rca_card = page.locator(f"#rca-{incidents[0].rca_id}")
    assert "auth_failed" in rca_card.locator("h2").inner_text()
    assert rca_card.locator("form").count() == 0
