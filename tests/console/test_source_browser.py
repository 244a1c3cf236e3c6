"""The source page follows its source live, in a real browser (see test_browser.py for the set-up).

The switch is made from this process through the console's own service, as
a second operator would: its commit publishes the row on the channel layer
(Redis), which the live server's websocket forwards to the open page.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connections
from django_tenants.utils import tenant_context

from beastflow.tenancy import use_public
from console.services import operator_act
from engines import sources
from engines.models import Source
from tests.conftest import Persona
from tests.console.browser import console_url, sign_in
from tests.factories import make_source

# The first message of the source page's own feed: the ids of the rows it carries.
FIRST_ROWS = """(id) => new Promise((resolve) => {
  const ws = new WebSocket(`ws://${location.host}/ws/console/overview?source=${id}`);
  ws.onmessage = (event) => { resolve(JSON.parse(event.data).rows.map((r) => r.id)); ws.close(); };
  setTimeout(() => resolve("timeout"), 8000);
})"""


@pytest.fixture
def two_sources(personas: dict[str, Persona], django_db_blocker: Any) -> Iterator[tuple[int, int]]:
    """Two committed sources in acme: the one watched, and another whose rows must not reach its page."""
    tenant = personas["alice"].tenant
    with django_db_blocker.unblock(), tenant_context(tenant):
        watched, other = (make_source(f"live-{uuid.uuid4().hex[:8]}")[0].pk for _ in range(2))
    ids = (watched, other)
    try:
        yield ids
    finally:
        with django_db_blocker.unblock(), tenant_context(tenant):
            for source in Source.objects.filter(pk__in=ids):
                sources.source_delete(source=source)
        use_public()


def act(personas: dict[str, Persona], django_db_blocker: Any, source_id: int, **form: str) -> str:
    """A console action by another operator, committed (and so published) before it returns.

    In a thread of its own: sync Playwright keeps an event loop running on
    this one, where the commit's publish (async_to_sync) refuses to run.
    """

    def run() -> str:
        try:
            with tenant_context(personas["alice"].tenant):
                return operator_act(source=Source.objects.get(pk=source_id), actor="dana", **form)
        finally:
            connections.close_all()  # this thread's own connection

    with django_db_blocker.unblock(), ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def test_the_source_page_shows_a_mode_switch_and_a_pause_without_a_reload(
    two_sources: tuple[int, int],
    page_factory: Any,
    live_server_url: str,
    personas: dict[str, Persona],
    console_users: dict[str, User],
    django_db_blocker: Any,
) -> None:
    # given: alice watches a source in push mode
    watched, other = two_sources
    base = console_url(live_server_url, personas["alice"])
    page = page_factory()
    sign_in(page, base, console_users["alice"], next_path=f"/sources/{watched}/")
    page.wait_for_selector('#live[data-state="live"]')
    mode, paused = page.locator('#status [data-field="mode"]'), page.locator('#status [data-field="paused"]')
    assert mode.inner_text() == "Event (push)"
    assert not paused.is_visible()
    page.evaluate("window.__sameDocument = 'still here'")
    # and its feed carries this source's rows only
    assert page.evaluate(FIRST_ROWS, watched) == [watched]
    # when: another operator forces it to polling, and pauses the other source
    assert "moved from event to polling" in act(
        personas, django_db_blocker, watched, action="force_mode", mode="polling", reason="vendor maintenance"
    )
    act(personas, django_db_blocker, other, action="pause", reason="not this one")
    # then: the badge turns in place
    mode.filter(has_text="Polling").wait_for(timeout=10_000)
    assert page.evaluate("window.__sameDocument") == "still here"  # no reload happened
    assert "badge-polling" in (mode.get_attribute("class") or "")
    assert not paused.is_visible()  # the other source's pause is not this page's
    # when: the watched source is paused too
    act(personas, django_db_blocker, watched, action="pause", reason="vendor maintenance")
    # then
    paused.wait_for(state="visible", timeout=10_000)
    assert page.locator('[data-field="health_band"]').inner_text() == "paused"
    assert page.evaluate("window.__sameDocument") == "still here"
    assert page.evaluate("window.BeastFlow.source.updates") >= 3  # the snapshot, the switch, the pause
