"""DRF authentication by API key; the tenant was resolved by the middleware."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from tenants.models import Tenant
from tenants.selectors import ResolvedKey


@dataclass(frozen=True)
class TenantPrincipal:
    """Who calls the API: a tenant, through one of its keys."""

    tenant: Tenant
    key_id: int
    is_authenticated: bool = True
    is_anonymous: bool = False

    @property
    def pk(self) -> str:
        return f"key:{self.key_id}"


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[TenantPrincipal, ResolvedKey] | None:
        raw = request._request
        resolved: ResolvedKey | None = getattr(raw, "api_key", None)
        if resolved is not None:
            return TenantPrincipal(tenant=resolved.tenant, key_id=resolved.key_id), resolved
        if getattr(raw, "api_key_invalid", False):
            raise AuthenticationFailed("The API key is missing, malformed, unknown or revoked.")
        return None

    def authenticate_header(self, request: Request) -> str:
        # A value here makes DRF answer 401 rather than 403 (docs/contract.md §2).
        return 'Bearer realm="beastflow"'


class HasTenantKey(BasePermission):
    message = "An API key is required: send 'Authorization: Bearer <api_key>'."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, ResolvedKey)
