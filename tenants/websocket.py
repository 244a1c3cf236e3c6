"""Tenant resolution for websockets (django-tenants has none for ASGI).

Sets scope["tenant"] (or None) and scope["api_key"] from the API key in the
Authorization header or `?token=`, else from the Host for the console. The
consumer decides what an unauthenticated connection may do; database work
in consumers must set the schema itself (`schema_context`), because each
`database_sync_to_async` call may run on another thread.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async

from beastflow.tenancy import use_public
from tenants.middleware import bearer_token, host_without_port
from tenants.models import Tenant
from tenants.selectors import ResolvedKey, apikey_resolve, tenant_for_host

Scope = dict[str, Any]


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}


@database_sync_to_async
def _resolve(token: str | None, host: str) -> tuple[Tenant | None, ResolvedKey | None, bool]:
    use_public()
    if token is not None:
        resolved = apikey_resolve(token)
        return (resolved.tenant if resolved else None), resolved, resolved is None
    return tenant_for_host(host_without_port(host)), None, False


def token_from_scope(scope: Scope) -> str | None:
    headers = _headers(scope)
    if "authorization" in headers:
        return bearer_token(headers["authorization"]) or ""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    tokens = query.get("token")
    return tokens[0] if tokens else None


class TenantWebsocketMiddleware:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> Any:
        token = token_from_scope(scope)
        tenant, resolved, invalid = await _resolve(token, _headers(scope).get("host", ""))
        scope = dict(scope, tenant=tenant, api_key=resolved, api_key_invalid=invalid)
        return await self.inner(scope, receive, send)
