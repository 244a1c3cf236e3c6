"""Which tenant a request belongs to.

The API key decides for the API (docs/contract.md §2); a push carrying no key
(BeastFlow events signed with the source's secret, or an upstream's own
webhook, docs/push.md) is routed by its global source id; the host decides
for the console and the admin. Operational endpoints always run in the public
schema, whatever the host, so /metrics can be scraped by IP.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from beastflow.ingest_route import INGEST_PATH
from beastflow.tenancy import use_public, use_tenant
from tenants.selectors import ResolvedKey, apikey_resolve, tenant_for_host, tenant_for_source

PUBLIC_PATHS = ("/healthz", "/readyz", "/metrics", "/api/schema", "/api/docs", "/static/")


def bearer_token(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def host_without_port(host: str) -> str:
    if host.startswith("["):  # IPv6 literal
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if ":" in host else host


class TenantResolutionMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        use_public()
        self.resolve(request)
        try:
            return self.get_response(request)
        finally:
            use_public()

    def resolve(self, request: HttpRequest) -> None:
        request.api_key = None  # type: ignore[attr-defined]
        request.api_key_invalid = False  # type: ignore[attr-defined]
        # No `tenant` attribute at all on the public schema: django-tenants'
        # admin templates read "no attribute" as public (None crashes them).
        path = request.path_info
        if path.startswith(PUBLIC_PATHS):
            return
        tenant = None
        authorization = request.headers.get("Authorization", "")
        if authorization:
            token = bearer_token(authorization)
            resolved: ResolvedKey | None = apikey_resolve(token) if token else None
            if resolved is None:
                request.api_key_invalid = True  # type: ignore[attr-defined]
            else:
                request.api_key = resolved  # type: ignore[attr-defined]
                tenant = resolved.tenant
        elif path.startswith("/api/"):
            match = INGEST_PATH.match(path)
            if match:  # the source's push scheme says how it is verified (engines/ingest/service.py)
                tenant = tenant_for_source(int(match.group(1)))
        else:
            tenant = tenant_for_host(host_without_port(request.get_host()))
        if tenant is not None:
            request.tenant = tenant  # type: ignore[attr-defined]
            use_tenant(tenant)
