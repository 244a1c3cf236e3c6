"""The tenant admin's Source page: preset-filled fields editable as JSON, validated like the API, secret write-only."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.client import MULTIPART_CONTENT
from django_tenants.utils import tenant_context

from engines.models import Source
from engines.sources import parse_spec, push_secret, source_create
from tenants.models import SourceRoute
from tests.conftest import Persona

HOST = "acme.localhost"
SECRET = "the-upstream-webhook-secret"


def _staff() -> Client:
    user = get_user_model().objects.create_user("olga", password="pw-olga-12345", is_staff=True, is_superuser=True)
    client = Client(HTTP_HOST=HOST)
    client.force_login(user)
    return client


def _request(client: Client, method: str, path: str, data: dict[str, Any] | None = None) -> Any:
    # The middleware leaves the connection on public: put the test's schema back.
    tenant = connection.tenant  # type: ignore[attr-defined]
    try:
        if method == "post":
            return client.post(path, data or {}, content_type=MULTIPART_CONTENT)
        return client.get(path)
    finally:
        connection.set_tenant(tenant)  # type: ignore[attr-defined]


def _github_source(persona: Persona) -> Source:
    body = {
        "name": "gh",
        "preset": "github-issues",
        "config": {"owner": "octo-org", "repo": "hello", "headers": {"Authorization": "Bearer tkn"}},
        "push": {"secret": SECRET},
    }
    with tenant_context(persona.tenant):
        return source_create(spec=parse_spec(body))[0]


def _form(source: Source, **changes: Any) -> dict[str, Any]:
    """The change form as a browser would post it back untouched, with `changes`."""
    data: dict[str, Any] = {
        "name": source.name,
        "paused": "",
        "preset": source.preset,
        "connector": source.connector,
        "push_secret": "",
    }
    for name in ("config", "push", "poll", "hysteresis", "reconcile", "health", "data_schema"):
        data[name] = json.dumps(getattr(source, name))
    for name, value in changes.items():
        data[name] = value if isinstance(value, str) else json.dumps(value)
    return {name: value for name, value in data.items() if name != "paused" or value}


def test_the_change_page_shows_the_preset_filled_fields_and_never_the_secret(alice: Persona) -> None:
    # given
    source = _github_source(alice)
    # when
    page = _request(_staff(), "get", f"/admin/engines/source/{source.pk}/change/").content.decode()
    # then
    assert "github-issues: GitHub issues of one repository" in page
    assert "to_string(body.issue.id)" in page
    assert "/repos/{owner}/{repo}/issues" in page
    assert "set (write-only)" in page
    assert SECRET not in page
    assert source.push_secret_encrypted not in page


def test_a_bad_mapping_expression_is_refused_on_its_field_and_nothing_is_stored(alice: Persona) -> None:
    # given
    source = _github_source(alice)
    push = {**source.push, "mapping": {**source.push["mapping"], "key": "body.issue.[id"}}
    # when
    response = _request(_staff(), "post", f"/admin/engines/source/{source.pk}/change/", _form(source, push=push))
    # then
    assert response.status_code == 200  # the form again, with the error
    assert "push.mapping.key" in response.content.decode()
    with tenant_context(alice.tenant):
        assert Source.objects.get(pk=source.pk).push["mapping"]["key"] == "to_string(body.issue.id)"


def test_a_config_the_preset_refuses_names_the_field(alice: Persona) -> None:
    source = _github_source(alice)
    config = {**source.config, "owner": "../admin"}
    response = _request(_staff(), "post", f"/admin/engines/source/{source.pk}/change/", _form(source, config=config))
    assert response.status_code == 200
    assert "config.owner" in response.content.decode()
    with tenant_context(alice.tenant):
        assert Source.objects.get(pk=source.pk).config["owner"] == "octo-org"


def test_staff_change_the_poll_and_set_a_new_secret_that_is_kept_encrypted(alice: Persona) -> None:
    # given
    source = _github_source(alice)
    poll = {**source.poll, "audit_interval_s": 30}
    # when
    response = _request(
        _staff(),
        "post",
        f"/admin/engines/source/{source.pk}/change/",
        _form(source, poll=poll, push_secret="rotated-secret"),
    )
    # then
    assert response.status_code == 302, response.content.decode()[:2000]
    with tenant_context(alice.tenant):
        stored = Source.objects.get(pk=source.pk)
        assert stored.poll["audit_interval_s"] == 30
        assert stored.push["mapping"] == source.push["mapping"]
        assert push_secret(stored) == "rotated-secret"


def test_an_empty_secret_field_keeps_the_secret(alice: Persona) -> None:
    source = _github_source(alice)
    response = _request(_staff(), "post", f"/admin/engines/source/{source.pk}/change/", _form(source))
    assert response.status_code == 302
    with tenant_context(alice.tenant):
        assert push_secret(Source.objects.get(pk=source.pk)) == SECRET


def test_a_source_added_in_the_admin_goes_through_the_service(alice: Persona) -> None:
    # given: only the tenant's part of a preset
    form = {
        "name": "stripe",
        "preset": "stripe-customers",
        "connector": "rest",
        "config": json.dumps({"headers": {"Authorization": "Bearer rk_test_1"}}),
        "push": json.dumps({}),
        "push_secret": "whsec_abc",
        "poll": "null",
        "hysteresis": "null",
        "reconcile": "null",
        "health": "null",
        "data_schema": "null",
    }
    # when
    response = _request(_staff(), "post", "/admin/engines/source/add/", form)
    # then
    assert response.status_code == 302, response.content.decode()[:3000]
    with tenant_context(alice.tenant):
        source = Source.objects.get(name="stripe")
        assert source.preset == "stripe-customers"
        assert source.push["scheme"] == "stripe"
        assert source.config["list_path"] == "/v1/events"
        assert push_secret(source) == "whsec_abc"
        assert SourceRoute.objects.filter(pk=source.pk, tenant=alice.tenant).exists()


def test_a_native_scheme_without_a_secret_is_a_form_error(alice: Persona) -> None:
    form = {
        "name": "gh2",
        "preset": "github-issues",
        "connector": "rest",
        "config": json.dumps({"owner": "o", "repo": "r"}),
        "push": "{}",
        "push_secret": "",
        "poll": "null",
        "hysteresis": "null",
        "reconcile": "null",
        "health": "null",
        "data_schema": "null",
    }
    response = _request(_staff(), "post", "/admin/engines/source/add/", form)
    assert response.status_code == 200
    assert "needs the upstream" in response.content.decode()
    with tenant_context(alice.tenant):
        assert not Source.objects.filter(name="gh2").exists()


def test_deleting_in_the_admin_removes_the_route_too(alice: Persona) -> None:
    source = _github_source(alice)
    response = _request(_staff(), "post", f"/admin/engines/source/{source.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    with tenant_context(alice.tenant):
        assert not Source.objects.filter(pk=source.pk).exists()
    assert not SourceRoute.objects.filter(pk=source.pk).exists()


def test_staff_declare_an_upstream_without_webhooks_and_the_source_moves_to_polling(alice: Persona) -> None:
    source = _github_source(alice)
    push = {**source.push, "expected": False}
    response = _request(_staff(), "post", f"/admin/engines/source/{source.pk}/change/", _form(source, push=push))
    assert response.status_code == 302, response.content.decode()[:2000]
    with tenant_context(alice.tenant):
        stored = Source.objects.get(pk=source.pk)
        assert (stored.mode, stored.push_expected) == ("polling", False)
        assert push_secret(stored) == SECRET  # the rest of `push` kept
