from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.models import User
from django.test import Client

from beastflow.tenancy import use_tenant
from console.models import OperatorAction
from engines.models import ModeSwitch, Source
from tenants.models import Role, Tenant
from tests.console.conftest import host_of
from tests.factories import make_source


def _act(client: Client, source: Source, **form: str) -> None:
    response = client.post(f"/sources/{source.pk}/actions/", form)
    assert response.status_code == 302, response.content
    use_tenant(client.tenant)  # type: ignore[attr-defined]  # the middleware leaves the connection on public


def test_pausing_a_source_is_audited_with_actor_and_reason(in_acme: Tenant, acme_console: Client) -> None:
    # given
    source, _ = make_source("orders")
    # when
    _act(acme_console, source, action="pause", reason="upstream maintenance")
    # then
    source.refresh_from_db()
    assert source.paused
    action = OperatorAction.objects.get(source=source)
    assert (action.actor, action.action, action.reason) == ("alice", "pause", "upstream maintenance")
    assert action.correlation_id  # the request's, shared with whatever it caused


def test_forcing_a_mode_writes_a_switch_and_an_operator_row_with_one_correlation_id(
    in_acme: Tenant, acme_console: Client
) -> None:
    # given
    source, _ = make_source("orders")
    # when
    _act(acme_console, source, action="force_mode", mode="polling", reason="vendor says webhooks are down")
    # then
    source.refresh_from_db()
    assert source.mode == "polling"
    switch = ModeSwitch.objects.get(source=source)
    action = OperatorAction.objects.get(source=source)
    assert switch.actor == "alice" and "vendor says webhooks are down" in switch.reason
    assert switch.correlation_id == action.correlation_id != ""


def test_forcing_a_mode_needs_a_reason(in_acme: Tenant, acme_console: Client) -> None:
    source, _ = make_source("orders")
    _act(acme_console, source, action="force_mode", mode="polling", reason=" ")
    source.refresh_from_db()
    assert source.mode == "event"
    # This source's rows only: browser tests commit operator rows of their own sources in acme.
    assert not OperatorAction.objects.filter(source=source).exists()


def test_a_viewer_cannot_act(in_acme: Tenant, member: Callable[..., User]) -> None:
    source, _ = make_source("orders")
    client = Client(HTTP_HOST=host_of(in_acme))
    client.force_login(member("victor", in_acme, role=Role.VIEWER))
    assert client.post(f"/sources/{source.pk}/actions/", {"action": "pause"}).status_code == 403
    use_tenant(in_acme)
    source.refresh_from_db()
    assert not source.paused


def test_actions_need_the_csrf_token(in_acme: Tenant, alice_user: User) -> None:
    source, _ = make_source("orders")
    client = Client(HTTP_HOST=host_of(in_acme), enforce_csrf_checks=True)
    client.force_login(alice_user)
    assert client.post(f"/sources/{source.pk}/actions/", {"action": "pause"}).status_code == 403
