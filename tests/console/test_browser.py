"""The console in a real browser against the running stack (uvicorn, worker, beat, simulator).

Sync Playwright cannot run inside a running event loop, so these tests and
their fixtures are plain sync functions (pytest-asyncio leaves them alone).
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlparse

import pytest
from django.contrib.auth.models import User
from django_tenants.utils import tenant_context

from console.models import OperatorAction
from tests.conftest import Persona
from tests.console.browser import console_url, shoot, sign_in
from tests.e2e.test_hybrid_flow import World, world  # noqa: F401  (the simulator-backed source fixture)

pytestmark = pytest.mark.usefixtures("celery_beat")


def test_signing_in_is_required(page_factory: Any, live_server_url: str, personas: dict[str, Persona]) -> None:
    # given
    base = console_url(live_server_url, personas["alice"])
    page = page_factory()
    # when
    page.goto(f"{base}/audit/")
    # then
    assert urlparse(page.url).path == "/login/"
    assert page.get_by_role("heading", name="Sign in to Acme").is_visible()
    code = page.evaluate(WS_CLOSE_CODE)
    assert code == 4401


# Opens the overview websocket from the page and resolves with its close code (or "open").
WS_CLOSE_CODE = """() => new Promise((resolve) => {
  const ws = new WebSocket(`ws://${location.host}/ws/console/overview`);
  ws.onmessage = () => resolve("open");
  ws.onclose = (event) => resolve(event.code);
  setTimeout(() => resolve("timeout"), 8000);
})"""


def test_a_user_of_one_tenant_cannot_see_anothers_console(
    page_factory: Any, live_server_url: str, personas: dict[str, Persona], console_users: dict[str, User]
) -> None:
    # given: charlie (globex) signs in on acme's host
    acme = console_url(live_server_url, personas["alice"])
    page = page_factory()
    sign_in(page, acme, console_users["charlie"])
    # when
    response = page.goto(f"{acme}/")
    # then: the page and the live feed refuse him
    assert response is not None and response.status == 403
    assert page.evaluate(WS_CLOSE_CODE) == 4403
    # and on his own tenant's host he is welcome
    globex = console_url(live_server_url, personas["charlie"])
    sign_in(page, globex, console_users["charlie"])
    assert page.goto(f"{globex}/").status == 200  # type: ignore[union-attr]
    assert page.evaluate(WS_CLOSE_CODE) == "open"


def test_the_overview_shows_a_source_falling_back_to_polling_without_a_reload(
    world: World,  # noqa: F811
    page_factory: Any,
    live_server_url: str,
    personas: dict[str, Persona],
    console_users: dict[str, User],
) -> None:
    # given: alice watches the overview while the stream is healthy (on a loaded machine a
    # heartbeat can come later than the tight silence limit allows: wait for event mode)
    world.wait_mode("event", timeout_s=60)
    base = console_url(live_server_url, personas["alice"])
    page = page_factory()
    sign_in(page, base, console_users["alice"])
    row = page.locator(f'tr[data-source-id="{world.source_id}"]')
    mode = row.locator('[data-field="mode"]')
    page.wait_for_selector('#live[data-state="live"]')
    mode.filter(has_text="Event (push)").wait_for(timeout=60_000)
    page.evaluate("window.__sameDocument = 'still here'")
    # when: the upstream stops pushing
    world.control("faults", {"outage": "push"})
    # then: the row turns to polling in place
    mode.filter(has_text="Polling").wait_for(timeout=40_000)
    assert page.evaluate("window.__sameDocument") == "still here"  # no reload happened
    assert page.evaluate("window.BeastFlow.overview.updates") > 1
    shoot(page, "overview")
    page.set_viewport_size({"width": 390, "height": 844})
    shoot(page, "overview-phone")
    # and the source page tells why, in the timeline
    page.set_viewport_size({"width": 1280, "height": 860})
    page.goto(f"{base}/sources/{world.source_id}/")
    timeline = page.locator("ol.timeline").inner_text()
    # By hysteresis (event → hybrid) or, when healing's tick comes first, its switch_to_polling (event → polling).
    assert "event → hybrid" in timeline or "event → polling" in timeline, timeline
    world.control("faults", {"outage": "none"})
    page.wait_for_timeout(1500)  # the charts draw after load
    shoot(page, "source")


def test_an_operator_action_is_audited_and_shown_in_the_audit_view(
    world: World,  # noqa: F811
    page_factory: Any,
    live_server_url: str,
    personas: dict[str, Persona],
    console_users: dict[str, User],
    django_db_blocker: Any,
) -> None:
    # given: a source in event mode whose silence judgement tolerates a loaded machine's
    # hiccups (this test is about the operator's switch, not the monitor's)
    from engines import sources
    from engines.models import Source

    with django_db_blocker.unblock(), tenant_context(personas["alice"].tenant):
        source = Source.objects.get(pk=world.source_id)
        sources.source_update(source=source, changes={"health": {"min_silence_s": 60}})
    assert world.mode() == "event"
    base = console_url(live_server_url, personas["alice"])
    page = page_factory()
    sign_in(page, base, console_users["alice"])
    page.goto(f"{base}/sources/{world.source_id}/")
    reason = f"vendor maintenance {uuid.uuid4().hex[:6]}"
    # when: alice forces polling with a reason, using the keyboard only
    page.select_option("#force-mode", "polling")
    page.focus("#force-reason")
    page.keyboard.type(reason)
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    # then: she is told, the row is written, and the audit view shows it with the switch it caused
    assert "moved from event to polling" in page.locator(".messages").inner_text()
    with django_db_blocker.unblock(), tenant_context(personas["alice"].tenant):
        action = OperatorAction.objects.get(source_id=world.source_id)
    assert (action.actor, action.action, action.reason) == (console_users["alice"].username, "force_mode", reason)
    page.goto(f"{base}/audit/?source={world.source_id}&correlation={action.correlation_id}&window=all")
    trail = page.locator("ol.timeline").inner_text()
    assert reason in trail
    assert "event → polling" in trail  # the ModeSwitch row shares the correlation id
    page.goto(f"{base}/audit/?window=all")
    shoot(page, "audit")


def test_staff_see_the_platform_view(
    page_factory: Any, live_server_url: str, personas: dict[str, Persona], console_users: dict[str, User]
) -> None:
    base = console_url(live_server_url, personas["alice"])
    page = page_factory()
    sign_in(page, base, console_users["sam"], next_path="/platform/")
    assert page.get_by_role("heading", name="Platform").is_visible()
    text = page.locator("main").inner_text()
    assert "acme" in text and "globex" in text
    assert "database" in text  # a /readyz component
    shoot(page, "platform")
