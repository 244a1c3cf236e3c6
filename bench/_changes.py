"""A websocket client of the changes feed, timing each change from commit to arrival.

Latency = the wall clock when the frame reaches us minus the change's
`committed_at` (same machine, same clock). `committed_at` is stamped when
the commit starts, so the figure includes the commit itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from datetime import datetime
from typing import Any

import websockets

CONNECT_TIMEOUT_S = 5.0
SETTLE_S = 0.3  # a consumer that refuses closes right after the handshake


def _changes_in(message: Any) -> list[dict[str, Any]]:
    """The change items of a frame, whatever envelope the consumer uses."""
    if isinstance(message, list):
        return [item for entry in message for item in _changes_in(entry)]
    if not isinstance(message, dict):
        return []
    if "seq" in message and "committed_at" in message:
        return [message]
    found: list[dict[str, Any]] = []
    for name in ("changes", "results", "items", "data", "change", "payload"):
        if name in message and isinstance(message[name], list | dict):
            found.extend(_changes_in(message[name]))
    return found


class ChangeWatcher:
    def __init__(self, port: int, api_key: str, after: int) -> None:
        self.url = f"ws://127.0.0.1:{port}/ws/v1/changes?after={after}&token={api_key}"
        self.after = after
        self.latencies: dict[int, list[float]] = defaultdict(list)  # by source id
        self.seqs: list[int] = []
        self.arrived_at: dict[str, float] = {}  # event id -> wall clock of its frame
        self.frames = 0
        self.closed_reason: str | None = None
        self._ws: Any = None
        self._task: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()

    async def start(self) -> str | None:
        """None when connected and listening, else why not."""
        try:
            self._ws = await asyncio.wait_for(websockets.connect(self.url, max_size=None), CONNECT_TIMEOUT_S)
        except websockets.exceptions.InvalidStatus as exc:
            return f"handshake answered HTTP {exc.response.status_code}"
        except (websockets.exceptions.WebSocketException, OSError, TimeoutError) as exc:
            return f"cannot connect: {exc!r}"
        self._task = asyncio.create_task(self._listen())
        await asyncio.sleep(SETTLE_S)
        if self._task.done():
            return f"closed right after connecting ({self.closed_reason})"
        return None

    async def _listen(self) -> None:
        try:
            async for frame in self._ws:
                arrived = time.time()
                self.frames += 1
                try:
                    message = json.loads(frame)
                except ValueError:
                    continue
                for change in _changes_in(message):
                    self._take(change, arrived)
                self._arrived.set()
        except websockets.exceptions.ConnectionClosed as exc:
            self.closed_reason = f"code {exc.rcvd.code if exc.rcvd else None}"
        else:
            self.closed_reason = "closed by server"

    def _take(self, change: dict[str, Any], arrived: float) -> None:
        seq = int(change["seq"])
        if seq <= self.after:
            return
        self.seqs.append(seq)
        self.arrived_at[str(change.get("event_id"))] = arrived
        committed = datetime.fromisoformat(str(change["committed_at"]).replace("Z", "+00:00")).timestamp()
        self.latencies[int(change.get("source") or 0)].append(arrived - committed)

    def received(self, source_id: int) -> int:
        return len(self.latencies.get(source_id, []))

    async def wait_for(self, source_id: int, count: int, timeout_s: float) -> bool:
        deadline = time.perf_counter() + timeout_s
        while self.received(source_id) < count:
            left = deadline - time.perf_counter()
            if left <= 0 or (self._task is not None and self._task.done()):
                return False
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)
        return True

    def order_problems(self) -> dict[str, int]:
        """docs/contract.md §5: seq order, no gaps, no duplicates (from `after` on)."""
        duplicates = len(self.seqs) - len(set(self.seqs))
        backwards = sum(1 for a, b in zip(self.seqs, self.seqs[1:], strict=False) if b <= a)
        gaps = 0
        if self.seqs:
            seen = set(self.seqs)
            gaps = sum(1 for seq in range(self.after + 1, max(seen) + 1) if seq not in seen)
        return {"duplicates": duplicates, "out_of_order": backwards, "gaps": gaps}

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 2)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
