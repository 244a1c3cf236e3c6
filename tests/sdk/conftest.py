"""Fixtures of the SDK's tests: a tenant of their own on the live server, and a client for it.

The SDK talks to the real service (tests/conftest.py's `live_server_url`:
uvicorn on the test database); its tenant is created for the module and
dropped after, so what these tests commit never shows in acme or globex.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from beastflow_sdk import Client

from beastflow.tenancy import use_public
from tenants import services
from tenants.models import Tenant
from tests.conftest import Persona


@dataclass(frozen=True)
class SdkTenant:
    tenant: Tenant
    api_key: str
    url: str

    def client(self, **options: Any) -> Client:
        return Client(self.url, self.api_key, **options)


def make_tenant(blocker: Any, url: str, *, rate: int | None = None, burst: int | None = None) -> SdkTenant:
    """A fresh committed tenant with an API key (and an ingest quota, when given)."""
    with blocker.unblock():
        tenant, issued = services.tenant_create(slug=f"sdk-{uuid.uuid4().hex[:8]}")
        if rate is not None:
            Tenant.objects.filter(pk=tenant.pk).update(ingest_rate_per_s=rate, ingest_burst=burst or rate)
        use_public()
    return SdkTenant(tenant, issued.raw, url)


def drop_tenant(blocker: Any, made: SdkTenant) -> None:
    with blocker.unblock():
        services.tenant_delete(tenant=Tenant.objects.get(pk=made.tenant.pk))
        use_public()


@pytest.fixture
def tenant_factory(
    personas: dict[str, Persona], live_server_url: str, django_db_blocker: Any
) -> Iterator[Callable[..., SdkTenant]]:
    """Make tenants on the live server (`rate`/`burst`: its ingest quota); each is dropped after the test."""
    made: list[SdkTenant] = []

    def make(**quota: int) -> SdkTenant:
        made.append(make_tenant(django_db_blocker, live_server_url, **quota))
        return made[-1]

    yield make
    for one in made:
        drop_tenant(django_db_blocker, one)


@pytest.fixture
def sdk_tenant(tenant_factory: Callable[..., SdkTenant]) -> SdkTenant:
    return tenant_factory()


@pytest.fixture
def bf(sdk_tenant: SdkTenant) -> Iterator[Client]:
    with sdk_tenant.client() as client:
        yield client


def source_body(name: str = "orders", **extra: Any) -> dict[str, Any]:
    """A source of BeastFlow's own protocol; its upstream is never called in these tests (push only)."""
    return {
        "name": f"{name}-{uuid.uuid4().hex[:6]}",
        "connector": "http",
        "config": {"poll_url": "http://127.0.0.1:9/changes", "snapshot_url": "http://127.0.0.1:9/snapshot"},
        **extra,
    }
