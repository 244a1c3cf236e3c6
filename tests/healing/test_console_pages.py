"""The healing console pages, server-rendered: what they show and what their forms do."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from healing.models import HealingAction, RCAResult
from healing.queue import queue_process
from healing.services import failure_report
from tests.conftest import Persona
from tests.console.conftest import acme_console, alice_user, member  # noqa: F401  (fixtures)
from tests.factories import make_source


@pytest.fixture
def waiting(alice: Persona) -> dict[str, Any]:
    with tenant_context(alice.tenant):
        source, _ = make_source("pages")
        failure = failure_report(
            kind="auth_failed", source_id=source.pk, detail={"host": "http://h:1", "http_status": 401}
        )
        queue_process()
        return {"rca": RCAResult.objects.get(failure=failure), "action": HealingAction.objects.get(failure=failure)}


def test_the_rca_review_shows_evidence_and_a_correction_is_recorded(
    acme_console: Client,  # noqa: F811
    waiting: dict[str, Any],
    alice: Persona,
) -> None:
    rca = waiting["rca"]
    page = acme_console.get("/rca/")
    assert page.status_code == 200, page.content[:2000]
    assert f'id="rca-{rca.pk}"'.encode() in page.content and b"refused the credentials" in page.content
    assert acme_console.get("/rca/?fragment=1").status_code == 200
    done = acme_console.post(f"/rca/{rca.pk}/confirm", {"category": "unknown", "note": "proxy"})
    assert done.status_code == 302
    with tenant_context(alice.tenant):
        rca.refresh_from_db()
    assert (rca.confirmed_category, rca.confirmed_by) == ("unknown", "alice")


def test_an_approval_is_decided_in_the_console_with_who_and_why(
    acme_console: Client,  # noqa: F811
    waiting: dict[str, Any],
    alice: Persona,
) -> None:
    action = waiting["action"]
    page = acme_console.get("/approvals/")
    assert page.status_code == 200 and f'id="action-{action.pk}"'.encode() in page.content
    acme_console.post(f"/approvals/{action.pk}/decide", {"decision": "reject", "reason": "not now"})
    with tenant_context(alice.tenant):
        action.refresh_from_db()
    assert (action.status, action.decided_by, action.reason) == ("rejected", "user:alice", "not now")
    assert acme_console.get("/healing/").status_code == 200
