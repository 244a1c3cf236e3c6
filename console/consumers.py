"""The live overview websocket: `ws/console/overview` on a tenant host, signed in by session.

Authenticate (session user via AuthMiddlewareStack, tenant from the host via
tenants.websocket), join the tenant's console group, send a snapshot, then
forward each status update. Refusals accept then close with 4000 + the HTTP
status, so the page can tell "sign in again" (4401) from "not yours" (4403).

A source page follows one source (`?source=<id>`): the same group, with the
rows of the other sources left out here rather than shipped to the browser.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django_tenants.utils import schema_context

from beastflow.tenancy import use_public
from console import live
from console.access import role_in
from console.selectors import source_rows
from tenants.models import Tenant

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404


@database_sync_to_async
def _role(user: Any, tenant: Tenant) -> str | None:
    use_public()
    return role_in(user, tenant)


@database_sync_to_async
def _snapshot(schema: str, source_id: int | None) -> list[dict[str, Any]]:
    with schema_context(schema):
        return source_rows(None if source_id is None else [source_id])


def _followed_source(query_string: bytes) -> int | None:
    """The `source` of the query string; None (every source) when absent or not a number."""
    values = parse_qs(query_string.decode("latin-1")).get("source", [])
    return int(values[0]) if values and values[0].isdigit() else None


class OverviewConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    group: str | None = None
    source_id: int | None = None

    async def connect(self) -> None:
        tenant = self.scope.get("tenant")
        user = self.scope.get("user")
        if tenant is None:
            await self._refuse(CLOSE_NOT_FOUND)
            return
        if user is None or not user.is_authenticated:
            await self._refuse(CLOSE_UNAUTHORIZED)
            return
        if await _role(user, tenant) is None:
            await self._refuse(CLOSE_FORBIDDEN)
            return
        self.source_id = _followed_source(self.scope.get("query_string", b""))
        self.group = live.group_for(tenant.schema_name)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "snapshot", "rows": await _snapshot(tenant.schema_name, self.source_id)})

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        pass  # one-way: whatever the page sends is ignored

    async def sources_update(self, event: dict[str, Any]) -> None:
        rows = event["rows"]
        if self.source_id is not None:
            rows = [r for r in rows if r["id"] == self.source_id]
            if not rows:
                return  # a tick that did not judge this source
        await self.send_json({"type": "update", "rows": rows})

    async def _refuse(self, code: int) -> None:
        await self.accept()
        await self.close(code=code)
