"""Websocket consumers: authenticate, subscribe, send; no logic here."""

from __future__ import annotations

import time
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

# Application close codes (4000-4999): the HTTP status they stand for + 4000.
CLOSE_UNAUTHORIZED = 4401


class PingConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """Proves the websocket path end to end: key -> tenant -> answer."""

    async def connect(self) -> None:
        if self.scope.get("api_key") is None:
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        await self.accept()
        await self.send_json({"type": "hello", "tenant": self.scope["tenant"].slug})

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong", "tenant": self.scope["tenant"].slug, "at": time.time()})
        else:
            await self.send_json({"type": "error", "detail": 'send {"type": "ping"}'})
