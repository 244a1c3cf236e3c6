"""Websocket consumers: authenticate, subscribe, send; no logic here.

The ordering rules of the changes stream live in engines.changes_stream and
its reads in engines.changes_reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

import structlog
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from engines import changes_bus, changes_reads
from engines.changes_stream import Change, ParamError, parse_stream_params, plan_live

log = structlog.get_logger(__name__)

# Application close codes (4000-4999): the HTTP status they stand for + 4000.
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_GONE = 4410  # the changes after the client's seq were removed by retention
CLOSE_INTERNAL_ERROR = 1011

# Backlog reads run on threads of their own: one client's long backlog must not
# hold up the shared sync thread, and a bounded pool bounds the database
# connections streams hold (one per thread) in a web process.
_readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="changes-stream-db")
_source_exists = database_sync_to_async(changes_reads.source_exists, thread_sensitive=False, executor=_readers)
_changes_page = database_sync_to_async(changes_reads.changes_page, thread_sensitive=False, executor=_readers)


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


class ChangesConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """`ws/v1/changes?after=<seq>&source=<id>` (docs/contract.md §5).

    Sends every change after `after` as one JSON frame each, in the changes
    feed's item shape, strictly in seq order, then live changes as they are
    committed. How it stays gap- and duplicate-free:

    1. Subscribe to the tenant's live batches first (engines.changes_bus),
       so batches committed from now on queue up locally while the backlog
       is read.
    2. Read the backlog from the database in pages up to the committed head.
    3. Take the queued and later live batches in turn; skip what was sent,
       read from the database whatever a batch shows to be missing before it.
    4. When nothing arrived for a while, check the database anyway: a lost
       publish (Redis restarted, a reconnect) must not stall the client.

    It uses no channel layer: live batches come from the process's hub.
    """

    channel_layer_alias = "__none__"  # no channel, no per-consumer blocking read on Redis

    schema: str
    cursor: int
    source_id: int | None
    subscribed: bool = False
    pump: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        tenant = self.scope.get("tenant")
        if self.scope.get("api_key") is None or tenant is None:
            await self._refuse(CLOSE_UNAUTHORIZED)
            return
        try:
            params = parse_stream_params(parse_qs(self.scope.get("query_string", b"").decode("latin-1")))
        except ParamError as exc:
            await self._refuse(CLOSE_BAD_REQUEST, str(exc))
            return
        self.schema, self.cursor, self.source_id = tenant.schema_name, params.after, params.source_id
        if self.source_id is not None and not await _source_exists(self.schema, self.source_id):
            await self._refuse(CLOSE_NOT_FOUND, "no such source")
            return
        await self.accept()
        self.queue: asyncio.Queue[Sequence[Change] | None] = asyncio.Queue()
        self.hub = changes_bus.hub()
        self.subscribed = True
        await self.hub.subscribe(self.schema, self._on_batch)
        self.pump = asyncio.get_running_loop().create_task(self._pump())

    async def disconnect(self, code: int) -> None:
        if self.pump is not None:
            self.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.pump
        if self.subscribed:
            self.subscribed = False
            await self.hub.unsubscribe(self.schema, self._on_batch)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        pass  # the stream is one-way: whatever a client sends (keep-alives, junk) is ignored

    def _on_batch(self, batch: changes_bus.Batch | None) -> None:
        """From the hub: a live batch, or None for "read the database, you may have missed some"."""
        if batch is not None and self.queue.qsize() >= _setting("BEASTFLOW_WS_QUEUE_MAX", 1000):
            # A client slower than the commits: forget the queued batches and
            # let the pump read them from the database in pages instead.
            while not self.queue.empty():
                self.queue.get_nowait()
            batch = None
        self.queue.put_nowait(batch)

    async def _pump(self) -> None:
        idle_s = float(_setting("BEASTFLOW_WS_IDLE_CHECK_S", 5.0))
        try:
            await self._catch_up()
            while True:
                try:
                    batch = await asyncio.wait_for(self.queue.get(), idle_s)
                except TimeoutError:
                    batch = None
                if batch is None:
                    await self._catch_up()
                else:
                    await self._send_live(batch)
        except asyncio.CancelledError:
            raise
        except changes_reads.ChangesGoneError as exc:
            # Said, not skipped: the client must re-read the records and resume from the floor.
            log.info("changes_stream_gone", schema=self.schema, cursor=self.cursor, floor=exc.floor)
            await self.close(code=CLOSE_GONE, reason=f"gone: resume with after >= {exc.floor}")
        except Exception:
            log.exception("changes_stream_failed", schema=self.schema, cursor=self.cursor)
            await self.close(code=CLOSE_INTERNAL_ERROR)

    async def _catch_up(self, below: int | None = None) -> None:
        """Send from the database every change after the cursor, up to the head (or below `below`)."""
        limit = int(_setting("BEASTFLOW_WS_PAGE_SIZE", 500))
        while True:
            changes, bound = await _changes_page(
                self.schema, after=self.cursor, source_id=self.source_id, limit=limit, below=below
            )
            for change in changes:
                await self.send_json(change)
            if len(changes) < limit:
                self.cursor = max(self.cursor, bound)
                return
            self.cursor = changes[-1]["seq"]

    async def _send_live(self, batch: Sequence[Change]) -> None:
        plan = plan_live(self.cursor, batch, source_id=self.source_id)
        if plan.fill_below is not None:
            await self._catch_up(below=plan.fill_below)
        for change in plan.send:
            await self.send_json(change)
        self.cursor = max(self.cursor, plan.cursor)

    async def _refuse(self, code: int, reason: str = "") -> None:
        # Accept, then close: a close before the handshake reaches a browser
        # as a bare HTTP 403, and the client could not tell why.
        await self.accept()
        await self.close(code=code, reason=reason or None)


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))
