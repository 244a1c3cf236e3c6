"""Tenant isolation on the key path (API) and the host path (admin)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.test import Client
from django_tenants.utils import tenant_context

from tests.conftest import Persona
from tests.factories import make_source, source_spec


def test_an_api_request_without_a_key_is_401_problem_json(alice: Persona) -> None:
    # when
    response = Client().get("/api/v1/sources")
    # then
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_an_unknown_key_is_401(alice: Persona) -> None:
    response = Client().get("/api/v1/sources", HTTP_AUTHORIZATION="Bearer bf_not_a_key")
    assert response.status_code == 401
    assert response.json()["title"] == "Unauthorized"


def test_a_non_bearer_authorization_is_401(alice: Persona) -> None:
    response = Client().get("/api/v1/sources", HTTP_AUTHORIZATION=f"Basic {alice.api_key}")
    assert response.status_code == 401


def test_alice_cannot_see_change_or_delete_charlies_source(alice: Persona, charlie: Persona) -> None:
    # given
    created = charlie.client().post("/api/v1/sources", source_spec("globex-orders"), format="json")
    assert created.status_code == 201
    source_id = created.json()["id"]
    # when / then
    as_alice = alice.client()
    assert as_alice.get(f"/api/v1/sources/{source_id}").status_code == 404
    assert as_alice.patch(f"/api/v1/sources/{source_id}", {"paused": True}, format="json").status_code == 404
    assert as_alice.delete(f"/api/v1/sources/{source_id}").status_code == 404
    assert source_id not in [s["id"] for s in as_alice.get("/api/v1/sources").json()["results"]]
    # and charlie's source is untouched
    after = charlie.client().get(f"/api/v1/sources/{source_id}")
    assert after.status_code == 200 and after.json()["paused"] is False


def test_404_for_another_tenants_object_is_the_same_as_for_a_missing_one(alice: Persona, charlie: Persona) -> None:
    source_id = charlie.client().post("/api/v1/sources", source_spec("x"), format="json").json()["id"]
    other = alice.client().get(f"/api/v1/sources/{source_id}")
    missing = alice.client().get("/api/v1/sources/999999999")
    assert other.status_code == missing.status_code == 404
    assert other.json() == missing.json()


def test_the_admin_on_a_tenant_host_shows_only_that_tenants_rows(alice: Persona, charlie: Persona) -> None:
    # given
    with tenant_context(alice.tenant):
        _mine, _ = make_source("acme-only")
    with tenant_context(charlie.tenant):
        theirs, _ = make_source("globex-only")
    staff = get_user_model().objects.create_user("olivia", password="pw-olivia-123", is_staff=True, is_superuser=True)
    browser = Client(HTTP_HOST="acme.localhost")
    browser.force_login(staff)
    # when
    listing = browser.get("/admin/engines/source/")
    foreign = browser.get(f"/admin/engines/source/{theirs.pk}/change/")
    # then
    assert listing.status_code == 200
    assert b"acme-only" in listing.content
    assert b"globex-only" not in listing.content
    assert foreign.status_code in (302, 404)  # the admin redirects "does not exist" to its index
    assert b"globex-only" not in foreign.content


def test_the_admin_requires_a_login(alice: Persona) -> None:
    response = Client(HTTP_HOST="acme.localhost").get("/admin/engines/source/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_the_admin_login_checks_csrf(alice: Persona) -> None:
    get_user_model().objects.create_user("mallory", password="pw-mallory-123", is_staff=True)
    browser = Client(enforce_csrf_checks=True, HTTP_HOST="acme.localhost")
    response = browser.post("/admin/login/", {"username": "mallory", "password": "pw-mallory-123"})
    assert response.status_code == 403
