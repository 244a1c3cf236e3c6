"""Every admin page renders on the host it belongs to; audit rows are view only."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client

from beastflow.admin_tenant import TenantAuditAdmin, TenantOnlyAdmin
from tests.conftest import Persona

REGISTERED = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def _staff_client(host: str) -> Client:
    staff = get_user_model().objects.create_user("olga", password="pw-olga-12345", is_staff=True, is_superuser=True)
    browser = Client(HTTP_HOST=host)
    browser.force_login(staff)
    return browser


@pytest.mark.parametrize(("model", "model_admin"), REGISTERED, ids=[m._meta.label for m, _ in REGISTERED])
def test_each_changelist_renders_on_its_own_host(
    alice: Persona,
    model: type,
    model_admin: admin.ModelAdmin,  # type: ignore[type-arg]
) -> None:
    # given: tenant models on the tenant's host, public ones on the public host
    tenant_only = isinstance(model_admin, TenantOnlyAdmin)
    host = "acme.localhost" if tenant_only else "localhost"
    browser = _staff_client(host)
    url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
    # when
    listing = browser.get(url)
    adding = browser.get(f"{url}add/")
    # then
    assert listing.status_code == 200, (url, listing.status_code)
    if isinstance(model_admin, TenantAuditAdmin):
        assert adding.status_code == 403


@pytest.mark.parametrize("host", ["localhost", "acme.localhost"])
def test_the_admin_index_renders_on_the_public_and_a_tenant_host(alice: Persona, host: str) -> None:
    # when: the URL `make up` prints, and a tenant's
    index = _staff_client(host).get("/admin/")
    # then
    assert index.status_code == 200
    assert (b"Tenants" in index.content) == (host == "localhost")
