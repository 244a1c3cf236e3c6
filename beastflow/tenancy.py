"""Typed access to the tenant state django-tenants keeps on the connection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, cast

from django.db import connection

if TYPE_CHECKING:
    from tenants.models import Tenant

PUBLIC = "public"


class _TenantConnection(Protocol):
    schema_name: str
    tenant: Any

    def set_tenant(self, tenant: Any, include_public: bool = True) -> None: ...

    def set_schema_to_public(self) -> None: ...


def _conn() -> _TenantConnection:
    return cast(_TenantConnection, connection)


def current_schema() -> str:
    return _conn().schema_name


def current_tenant() -> Tenant:
    """The tenant whose schema the connection uses (not valid in public)."""
    conn = _conn()
    if current_schema() == PUBLIC:
        raise RuntimeError("no tenant: the connection is on the public schema")
    from tenants.models import Tenant

    if not isinstance(conn.tenant, Tenant):
        # set_schema() by name leaves a stand-in without the model's fields
        # (tier, quotas); load the real row once and keep it on the connection.
        conn.tenant = Tenant.objects.get(schema_name=conn.schema_name)
    return cast("Tenant", conn.tenant)


def use_public() -> None:
    _conn().set_schema_to_public()


def use_tenant(tenant: Tenant) -> None:
    _conn().set_tenant(tenant)
