"""GET /api/v1/presets and sources made from a preset, through the API."""

from __future__ import annotations

from typing import Any

from django_tenants.utils import tenant_context
from rest_framework.test import APIClient

from engines.models import Source
from engines.sources import push_secret
from tests.conftest import Persona

GITHUB_BODY: dict[str, Any] = {
    "name": "gh",
    "preset": "github-issues",
    "config": {
        "base_url": "https://api.github.com",
        "owner": "octo-org",
        "repo": "hello",
        "headers": {"Authorization": "Bearer <token>"},
    },
    "push": {"secret": "the secret set on the upstream's webhook"},
    "poll": {"audit_interval_s": 60},
}


def test_presets_are_listed_with_what_the_tenant_must_supply(alice: Persona) -> None:
    # when
    response = alice.client().get("/api/v1/presets")
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    by_name = {item["name"]: item for item in body["results"]}
    assert {"github-issues", "stripe-customers", "shopify-orders"} <= set(by_name)
    github = by_name["github-issues"]
    assert set(github) == {"name", "title", "connector", "push_scheme", "config_schema", "docs"}
    assert (github["connector"], github["push_scheme"]) == ("rest", "github")
    assert github["config_schema"]["required"] == ["owner", "repo"]
    assert {"base_url", "headers", "owner", "repo"} <= set(github["config_schema"]["properties"])
    assert by_name["stripe-customers"]["push_scheme"] == "stripe"
    assert by_name["shopify-orders"]["push_scheme"] == "shopify"


def test_one_preset_shows_the_fields_it_fills_and_an_example(alice: Persona) -> None:
    body = alice.client().get("/api/v1/presets/github-issues").json()
    assert body["fills"]["config"]["list_path"] == "/repos/{owner}/{repo}/issues"
    assert body["fills"]["push"]["mapping"]["key"] == "to_string(body.issue.id)"
    assert body["example"]["preset"] == "github-issues"


def test_an_unknown_preset_is_a_404_problem(alice: Persona) -> None:
    response = alice.client().get("/api/v1/presets/nope")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/problem+json")


def test_presets_need_an_api_key() -> None:
    assert APIClient().get("/api/v1/presets").status_code == 401
    assert APIClient().get("/api/v1/presets/github-issues").status_code == 401


def test_a_source_made_from_a_preset_is_whole_and_keeps_its_preset(alice: Persona) -> None:
    # when
    created = alice.client().post("/api/v1/sources", GITHUB_BODY, format="json")
    # then
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["preset"] == "github-issues"
    assert body["connector"] == "rest"
    assert body["config"]["owner"] == "octo-org"
    assert body["config"]["list_path"] == "/repos/{owner}/{repo}/issues"
    assert body["config"]["headers"]["Authorization"] == "Bearer <token>"
    assert body["push"]["scheme"] == "github"
    assert body["push"]["secret_set"] is True
    assert "secret" not in body["push"]
    assert body["push"]["mapping"]["version"] == "body.issue.updated_at"
    assert body["poll"]["audit_interval_s"] == 60
    fetched = alice.client().get(f"/api/v1/sources/{body['id']}").json()
    assert fetched["preset"] == "github-issues"
    with tenant_context(alice.tenant):
        source = Source.objects.get(pk=body["id"])
        assert source.preset == "github-issues"
        assert push_secret(source) == GITHUB_BODY["push"]["secret"]
        assert GITHUB_BODY["push"]["secret"] not in source.push_secret_encrypted


def test_a_preset_source_without_owner_is_a_422_naming_it_and_nothing_is_stored(alice: Persona) -> None:
    # when
    response = alice.client().post(
        "/api/v1/sources", {**GITHUB_BODY, "config": {"headers": {"Authorization": "Bearer t"}}}, format="json"
    )
    # then
    assert response.status_code == 422
    assert response["Content-Type"].startswith("application/problem+json")
    assert {error["field"] for error in response.json()["errors"]} == {"config.owner", "config.repo"}
    assert alice.client().get("/api/v1/sources").json()["results"] == []


def test_an_unknown_preset_in_a_source_is_a_422_on_preset(alice: Persona) -> None:
    response = alice.client().post("/api/v1/sources", {**GITHUB_BODY, "preset": "gitlab"}, format="json")
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["preset"]


def test_a_native_scheme_from_a_preset_still_needs_the_tenants_secret(alice: Persona) -> None:
    response = alice.client().post("/api/v1/sources", {**GITHUB_BODY, "push": {}}, format="json")
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["push.secret"]


def test_patching_a_preset_source_keeps_what_the_preset_filled(alice: Persona) -> None:
    # given
    client = alice.client()
    created = client.post("/api/v1/sources", GITHUB_BODY, format="json").json()
    # when: a new secret alone, and a new repository
    patched = client.patch(
        f"/api/v1/sources/{created['id']}",
        {"push": {"secret": "rotated"}, "config": {"owner": "octo-org", "repo": "other"}},
        format="json",
    )
    # then
    assert patched.status_code == 200, patched.json()
    body = patched.json()
    assert body["push"]["mapping"] == created["push"]["mapping"]
    assert body["config"]["repo"] == "other"
    assert body["config"]["list_path"] == "/repos/{owner}/{repo}/issues"
    with tenant_context(alice.tenant):
        assert push_secret(Source.objects.get(pk=created["id"])) == "rotated"


def test_a_source_read_back_and_sent_again_is_accepted(alice: Persona) -> None:
    client = alice.client()
    created = client.post("/api/v1/sources", GITHUB_BODY, format="json").json()
    editable = {name: created[name] for name in ("name", "connector", "config", "preset", "push", "poll")}
    patched = client.patch(f"/api/v1/sources/{created['id']}", editable, format="json")
    assert patched.status_code == 200, patched.json()
    assert patched.json()["push"]["secret_set"] is True


def test_patching_preset_to_null_leaves_the_preset_and_keeps_the_stored_fields(alice: Persona) -> None:
    client = alice.client()
    created = client.post("/api/v1/sources", GITHUB_BODY, format="json").json()
    patched = client.patch(f"/api/v1/sources/{created['id']}", {"preset": None}, format="json")
    assert patched.status_code == 200, patched.json()
    body = patched.json()
    assert body["preset"] is None
    assert body["config"] == created["config"]
    assert body["push"] == created["push"]
