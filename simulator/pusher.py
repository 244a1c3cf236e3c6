"""Pushes the simulator's events and keep-alives to a BeastFlow ingest URL.

What a request looks like is the profile's wire (simulator/profiles):
docs/contract.md §4 batches signed `X-BeastFlow-Signature` by default, one native
webhook per change for `github` and `stripe`. Each step (every `batch_window_s`):

1. take the events appended to the change log since the last step and
   render them in the profile's shape;
2. while push is down (outage or the down half of flapping) they are lost,
   and no keep-alive goes out: the stream is silent;
3. otherwise apply the push faults (drop, schema break, duplicate) and send
   them, signed with the webhook secret; duplicates go out in the next
   request, after the original;
4. with `reorder_window` > 0 events wait in a pool until it is full (or old)
   and are then delivered one per request in shuffled order, so a later seq
   reaches BeastFlow before an earlier one;
5. the profile's keep-alive when due: a heartbeat carrying the newest seq
   every `heartbeat_s` (default profile), a GitHub `ping` (github).

A failed push (non-2xx, connection error) is counted and logged, never
retried: a real webhook sender loses it too, and polling must recover it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import httpx

from simulator.profiles.base import Item
from simulator.profiles.beastflow import sign
from simulator.state import Simulator

__all__ = ["MAX_BATCH", "Pusher", "sign"]

logger = logging.getLogger(__name__)

MAX_BATCH = 500  # well under docs/contract.md §4's 1000 per request
POOL_MAX_AGE_S = 2.0  # a reorder pool never holds an event longer than this


class Pusher:
    def __init__(
        self,
        sim: Simulator,
        *,
        ingest_url: str,
        webhook_secret: str | None = None,
        heartbeat_s: float = 1.0,
        batch_window_s: float = 0.05,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sim = sim
        self.ingest_url = ingest_url
        self.webhook_secret = webhook_secret
        self.heartbeat_s = heartbeat_s
        self.batch_window_s = batch_window_s
        self._client = client
        self._clock = clock
        self.wire = sim.profile.wire(webhook_secret, heartbeat_s=heartbeat_s)
        self._cursor = 0  # last seq taken from the change log
        self._generation = sim.dataset.generation
        self._redeliver: list[Item] = []
        self._pool: list[Item] = []
        self._pool_since = 0.0
        self._failing = False

    async def run(self, stopping: asyncio.Event) -> None:
        owns_client = self._client is None
        client = self._client or httpx.AsyncClient(timeout=5.0)
        try:
            while not stopping.is_set():
                try:
                    await self.step(client)
                except Exception as exc:  # e.g. a malformed ingest URL: keep serving the feed
                    self._record_failure(None, f"{type(exc).__name__}: {exc}")
                with contextlib.suppress(TimeoutError):  # the window passed: next step
                    await asyncio.wait_for(stopping.wait(), self.batch_window_s)
        finally:
            if owns_client:
                await client.aclose()

    async def step(self, client: httpx.AsyncClient) -> None:
        sim, stats = self.sim, self.sim.push
        fresh = self._take_new_events()
        now = self._clock()
        if sim.faults.is_down("push", now):
            stats.lost_down += len(fresh) + len(self._redeliver) + len(self._pool)
            self._redeliver.clear()
            self._pool.clear()
            return

        plan = sim.faults.plan_push(fresh, self.wire.breaks)
        stats.dropped += plan.dropped
        stats.duplicated += plan.duplicated
        stats.broken += plan.broken
        batch, self._redeliver = self._redeliver, plan.redeliver

        window = sim.faults.faults.reorder_window
        singles: list[Item] = []
        if window > 0:
            if plan.send and not self._pool:
                self._pool_since = now
            self._pool.extend(plan.send)
        else:
            batch.extend(plan.send)
        if self._pool and (window == 0 or len(self._pool) >= window or now - self._pool_since >= POOL_MAX_AGE_S):
            singles, self._pool = self._pool, []
            sim.faults.rng.shuffle(singles)
            stats.reordered += len(singles)

        latency = sim.faults.latency_s()
        if latency > 0 and (batch or singles):
            await asyncio.sleep(latency)
        size = MAX_BATCH if self.wire.batched else 1
        for start in range(0, len(batch), size):
            await self._post(client, batch[start : start + size])
        for item in singles:
            await self._post(client, [item])

        keepalive = self.wire.keepalive(now)
        if keepalive is not None and await self._post(client, [keepalive]):
            stats.heartbeats += 1

    def _take_new_events(self) -> list[Item]:
        ds = self.sim.dataset
        if ds.generation != self._generation:  # dataset reset: seq restarts at 1
            self._generation, self._cursor = ds.generation, 0
            self._redeliver.clear()
            self._pool.clear()
        items: list[Item] = []
        for event, meta in ds.log_entries(after=self._cursor):
            self._cursor = event["seq"]
            item = self.wire.render(event, meta)
            if item is not None:
                items.append(item)
        return items

    async def _post(self, client: httpx.AsyncClient, items: list[Item]) -> bool:
        stats = self.sim.push
        headers, body = self.wire.encode(items)
        stats.requests += 1
        try:
            resp = await client.post(self.ingest_url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            self._record_failure(None, f"{type(exc).__name__}: {exc}")
            return False
        stats.last_status = resp.status_code
        if resp.is_success:
            stats.ok += 1
            stats.events_sent += sum(1 for item in items if self.wire.is_record(item))
            if self._failing:
                logger.info("push to %s recovered (%d)", self.ingest_url, resp.status_code)
                self._failing = False
            return True
        self._record_failure(resp.status_code, resp.text[:200])
        return False

    def _record_failure(self, status: int | None, error: str) -> None:
        stats = self.sim.push
        stats.failed += 1
        stats.last_error = error if status is None else f"{status}: {error}"
        if status is None:
            stats.last_status = None
        # Log the first failure of a run of failures, not each one: a dead
        # receiver would otherwise flood the log twenty times a second.
        if not self._failing:
            logger.warning("push to %s failing: %s", self.ingest_url, stats.last_error)
            self._failing = True
        else:
            logger.debug("push to %s failed: %s", self.ingest_url, stats.last_error)
