"""Cheap checks of bench/web_memory.py's arithmetic and of its snapshot route (no world built)."""

from __future__ import annotations

import asyncio
import gc
import json
import tracemalloc
from pathlib import Path
from typing import Any

from bench import _traced_app, web_memory


def test_growth_per_10k_requests_is_split_into_halves_so_a_plateau_shows() -> None:
    # given: +10 MB over the first 10,000 requests, +1 MB over the next 10,000
    series = [(0.0, 100.0, 0), (60.0, 110.0, 10_000), (120.0, 111.0, 20_000)]
    # then
    assert web_memory.slope(series) == (10.0, 1.0)


def test_the_telling_frames_are_our_own_and_the_innermost() -> None:
    ours = f"{web_memory.HERE}/engines/ingest/fastpath.py:295"
    frames = ["/usr/lib/python3.11/asyncio/runners.py:118", ours, f"{web_memory.HERE}/.venv/lib/x.py:1", "/lib/y.py:9"]
    assert web_memory._telling(frames) == [ours, "...", "/lib/y.py:9"]


def _call(path: str, query: bytes = b"") -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "path": path, "query_string": query, "method": "GET", "headers": []}
    asyncio.run(_traced_app.application(scope, receive, send))
    return int(sent[0]["status"]), bytes(sent[1]["body"])


def test_the_snapshot_route_writes_a_loadable_snapshot_only_while_tracing(tmp_path: Path) -> None:
    target = tmp_path / "web.snap"
    # not tracing: refused, nothing written
    assert _call(_traced_app.SNAPSHOT_PATH, f"path={target}".encode())[0] == 409
    assert not target.exists()
    # tracing: written, and it loads
    tracemalloc.start(2)
    try:
        assert _call(_traced_app.SNAPSHOT_PATH, f"path={target}".encode())[0] == 204
    finally:
        tracemalloc.stop()
    assert tracemalloc.Snapshot.load(str(target)).traces is not None


def test_the_collect_route_finds_garbage_the_collector_had_not_reached() -> None:
    # given: a reference cycle nobody holds
    gc.disable()
    try:
        cycle: list[Any] = []
        cycle.append(cycle)
        del cycle
        # when
        status, body = _call(_traced_app.COLLECT_PATH)
    finally:
        gc.enable()
    # then
    assert status == 200
    assert json.loads(body)["unreachable"] >= 1
