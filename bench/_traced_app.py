"""The web application with memory probes on demand, for bench/web_memory.py.

- GET /__bench/collect runs a full garbage collection and answers 200 with
  what it found, how long it took and the collector's counts, as JSON: the
  RSS before and after it tells memory held by garbage the collector had
  not reached yet from memory still in use. With ?types=1 it also counts
  the garbage's types (the 25 commonest): what the cycles are made of.
- GET /__bench/snapshot?path=<file> (under `PYTHONTRACEMALLOC=<frames>`)
  collects, then writes the process's tracemalloc snapshot there; 204.

Every other request goes to the real application untouched. Bench only:
nothing in the product imports this.
"""

from __future__ import annotations

import gc
import json
import time
import tracemalloc
from collections import Counter
from typing import Any
from urllib.parse import parse_qs

from beastflow.asgi import application as _application

SNAPSHOT_PATH = "/__bench/snapshot"
COLLECT_PATH = "/__bench/collect"


async def _answer(send: Any, status: int, body: bytes = b"") -> None:
    headers = [(b"content-type", b"application/json")] if body else []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http" or scope["path"] not in (SNAPSHOT_PATH, COLLECT_PATH):
        await _application(scope, receive, send)
        return
    if scope["path"] == COLLECT_PATH:
        counts = gc.get_count()
        kinds = "types=1" in scope.get("query_string", b"").decode()
        if kinds:  # keep what the collection finds, to say what the cycles are made of
            gc.set_debug(gc.DEBUG_SAVEALL)
        started = time.perf_counter()
        found = gc.collect()
        took = time.perf_counter() - started
        body: dict[str, Any] = {"unreachable": found, "counts_before": counts, "seconds": round(took, 4)}
        if kinds:
            gc.set_debug(0)
            tally = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage)
            gc.garbage.clear()
            body["types"] = dict(tally.most_common(25))
        await _answer(send, 200, json.dumps(body).encode())
        return
    target = parse_qs(scope.get("query_string", b"").decode()).get("path", [""])[0]
    if not target or not tracemalloc.is_tracing():
        await _answer(send, 409)
        return
    gc.collect()  # garbage is not growth
    tracemalloc.take_snapshot().dump(target)
    await _answer(send, 204)
