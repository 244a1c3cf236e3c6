from __future__ import annotations

from django.contrib.auth.models import User
from django.test import Client

from tests.conftest import Persona
from tests.console.conftest import host_of


def test_the_console_asks_for_a_sign_in_first(alice: Persona) -> None:
    response = Client(HTTP_HOST=host_of(alice.tenant)).get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/")


def test_the_sign_in_page_renders_with_a_csrf_token(alice: Persona) -> None:
    response = Client(HTTP_HOST=host_of(alice.tenant), enforce_csrf_checks=True).get("/login/")
    assert response.status_code == 200
    assert b"csrfmiddlewaretoken" in response.content


def test_a_member_sees_the_overview_with_every_nav_entry(acme_console: Client) -> None:
    response = acme_console.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    for label in ("Overview", "Audit", "RCA review", "Approvals", "Healing"):
        assert label in body
    assert "Platform" not in body  # staff only


def test_a_member_of_another_tenant_gets_403(alice: Persona, charlie_user: User) -> None:
    client = Client(HTTP_HOST=host_of(alice.tenant))
    client.force_login(charlie_user)
    for path in ("/", "/audit/", "/rca/", "/approvals/", "/healing/"):
        assert client.get(path).status_code == 403, path


def test_staff_see_every_tenant_and_the_platform_view(alice: Persona, member: object) -> None:
    staff = User.objects.create_user(username="sam", password="x", is_staff=True)
    client = Client(HTTP_HOST=host_of(alice.tenant))
    client.force_login(staff)
    assert client.get("/").status_code == 200
    assert client.get("/platform/").status_code == 200


def test_the_platform_view_is_for_staff_only(acme_console: Client) -> None:
    assert acme_console.get("/platform/").status_code == 403


HEALING_PAGES = {"/rca/": "RCA review", "/approvals/": "Approvals", "/healing/": "Healing"}


def test_the_healing_pages_render_inside_the_shared_layout(acme_console: Client) -> None:
    for path, label in HEALING_PAGES.items():
        response = acme_console.get(path)
        assert response.status_code == 200, path
        body = response.content.decode()
        assert '<nav class="nav" aria-label="Console">' in body, path
        assert f'<a href="{path}" aria-current="page">{label}</a>' in body, path  # its own nav entry, marked
        assert 'href="/audit/"' in body, path  # and the rest of the nav around it


def test_the_healing_pages_ask_for_a_sign_in_first(alice: Persona) -> None:
    client = Client(HTTP_HOST=host_of(alice.tenant))
    for path in HEALING_PAGES:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"] == f"/login/?next={path}"
