"""Console fixtures: users with memberships, a logged-in client on a tenant's host."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tenants.models import Membership, Role, Tenant
from tests.conftest import Persona


def host_of(tenant: Tenant) -> str:
    return str(tenant.domains.get(is_primary=True).domain)


@pytest.fixture
def member() -> Callable[..., User]:
    def make(username: str, tenant: Tenant | None, role: str = Role.OPERATOR, **extra: object) -> User:
        user = User.objects.create_user(username=username, password="pw-" + username, **extra)  # type: ignore[arg-type]
        if tenant is not None:
            Membership.objects.create(user=user, tenant=tenant, role=role)
        return user

    return make


@pytest.fixture
def alice_user(alice: Persona, member: Callable[..., User]) -> User:
    return member("alice", alice.tenant)


@pytest.fixture
def charlie_user(charlie: Persona, member: Callable[..., User]) -> User:
    return member("charlie", charlie.tenant)


@pytest.fixture
def acme_console(alice: Persona, alice_user: User) -> Client:
    """alice, signed in, on acme's console host."""
    client = Client(HTTP_HOST=host_of(alice.tenant))
    client.force_login(alice_user)
    client.tenant = alice.tenant  # type: ignore[attr-defined]
    return client
