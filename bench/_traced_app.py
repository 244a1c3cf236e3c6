"""The web application with a tracemalloc snapshot on demand, for bench/web_memory.py.

Run under `PYTHONTRACEMALLOC=<frames>`: GET /__bench/snapshot?path=<file>
writes the process's current tracemalloc snapshot there and answers 204.
Every other request goes to the real application untouched. Bench only:
nothing in the product imports this.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any
from urllib.parse import parse_qs

from beastflow.asgi import application as _application

SNAPSHOT_PATH = "/__bench/snapshot"


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http" and scope["path"] == SNAPSHOT_PATH:
        target = parse_qs(scope.get("query_string", b"").decode()).get("path", [""])[0]
        status = 204
        if not target or not tracemalloc.is_tracing():
            status = 409
        else:
            gc.collect()  # garbage is not growth
            tracemalloc.take_snapshot().dump(target)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await _application(scope, receive, send)
