"""Per-tenant ingest latency and throughput, measured around the fast path and kept in Redis by the minute.

Why not the Prometheus histograms: they are process-local and carry no
tenant (a label per tenant would be unbounded cardinality). Here:

1. `IngestCapacityRecorder` wraps the ASGI app in front of the ingest fast
   path: for `POST /api/v1/sources/{id}/events` it times the request from
   its arrival to its answer (the group commit's wait included, like the
   client sees it) and reads the answer's status and `accepted` +
   `duplicates`. The hot path only adds the numbers to a dict in process
   memory, keyed by source id (a few microseconds; bench/observability_overhead.py
   measures it).
2. A daemon thread flushes that dict every FLUSH_S: it finds each source's
   tenant (tenants.selectors, cached) and adds the counts to one Redis hash
   per tenant and minute, `cap:ingest:<schema>:<minute>` (requests, events,
   errors, throttled, and the latency sketch's buckets, observability/sketch.py),
   in one pipeline, kept RETENTION_S.
3. `ingest_window` sums a tenant's minutes over a window: requests/s,
   events/s, the busiest minute's events/s (what the quota is held against),
   errors, 429s and the latency percentiles.

Redis holds nothing that cannot be re-measured: after a flush the window
is simply shorter. Off with BEASTFLOW_CAPACITY_INGEST=0.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from beastflow.ingest_route import INGEST_PATH, Receive, Scope, Send
from beastflow.process_buffer import ProcessBuffer
from observability.sketch import bucket_of, merge, percentiles_ms

FLUSH_S = 5.0
RETENTION_S = 2 * 3600
MINUTE_S = 60


@dataclass
class _Tally:
    requests: int = 0
    events: int = 0
    errors: int = 0  # answers >= 400, except 429
    throttled: int = 0  # 429: over the tenant's quota
    buckets: dict[int, int] = field(default_factory=dict)


class _Tallies(ProcessBuffer[_Tally]):
    """What this process measured since its last flush, per source id."""

    def __init__(self, *, flush_in_thread: bool = True) -> None:
        super().__init__(
            name="capacity-flush",
            every_s=FLUSH_S,
            flush=lambda: flush(),
            failure_event="capacity_flush_failed",
            in_thread=flush_in_thread,
        )

    def add(self, source_id: int, seconds: float, status: int, events: int) -> None:
        self.started()
        index = bucket_of(seconds)
        with self.lock:
            tally = self.items.get(source_id)
            if tally is None:
                tally = self.items[source_id] = _Tally()
            tally.requests += 1
            tally.events += events
            if status == 429:
                tally.throttled += 1
            elif status >= 400:
                tally.errors += 1
            tally.buckets[index] = tally.buckets.get(index, 0) + 1


tallies = _Tallies()


def enabled() -> bool:
    return os.environ.get("BEASTFLOW_CAPACITY_INGEST", "1").strip().lower() not in ("0", "false", "no", "off")


class IngestCapacityRecorder:
    """ASGI middleware: time each ingest request and count what it carried (see the module's docstring)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], *, into: _Tallies | None = None) -> None:
        self.app = app
        self.on = enabled()
        self.tallies = into or tallies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (
            INGEST_PATH.match(scope["path"])
            if self.on and scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if match is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, seconds, events = 0, 0.0, 0

        async def watched(message: MutableMapping[str, Any]) -> None:
            nonlocal status, seconds, events
            kind = message["type"]
            if kind == "http.response.start":
                status = int(message["status"])
                seconds = time.perf_counter() - started
            elif kind == "http.response.body" and 200 <= status < 300:
                events = _events_in(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            if status:
                self.tallies.add(int(match.group(1)), seconds, status, events)


# The fast path's answer starts {"accepted": n, "duplicates": d ...}: read the two numbers without a JSON parse.
_COUNTS = re.compile(rb'"accepted":\s*(\d+),\s*"duplicates":\s*(\d+)')


def _events_in(body: bytes) -> int:
    """Events a 2xx answer counted: accepted + duplicates (what the quota took)."""
    found = _COUNTS.search(body)
    if found is not None:
        return int(found.group(1)) + int(found.group(2))
    try:
        answer = json.loads(body)
        return int(answer.get("accepted", 0)) + int(answer.get("duplicates", 0))
    except (ValueError, TypeError, AttributeError):
        return 0


# -- Redis ------------------------------------------------------------------------


def minute_key(schema: str, minute: int) -> str:
    from beastflow.redis_client import key

    return key("cap", "ingest", schema, minute)


def flush(now: float | None = None) -> int:
    """Add this process's tallies to Redis, by tenant and minute; returns the sources flushed."""
    from beastflow.redis_client import get_redis
    from tenants.selectors import tenant_for_source

    taken = tallies.take()
    if not taken:
        return 0
    minute = int((time.time() if now is None else now) // MINUTE_S)
    by_schema: dict[str, _Tally] = {}
    for source_id, tally in taken.items():
        tenant = tenant_for_source(source_id)
        if tenant is None:
            continue  # an unknown source: its 404s are nobody's capacity
        total = by_schema.setdefault(tenant.schema_name, _Tally())
        total.requests += tally.requests
        total.events += tally.events
        total.errors += tally.errors
        total.throttled += tally.throttled
        total.buckets = merge([total.buckets, tally.buckets])
    with get_redis().pipeline(transaction=False) as pipe:
        for schema, total in by_schema.items():
            name = minute_key(schema, minute)
            fields = {"n": total.requests, "ev": total.events, "err": total.errors, "thr": total.throttled}
            fields.update({f"b{index}": count for index, count in total.buckets.items()})
            for field_name, count in fields.items():
                if count:
                    pipe.hincrby(name, field_name, count)
            pipe.expire(name, RETENTION_S)
        pipe.execute()
    return len(taken)


@dataclass(frozen=True)
class IngestWindow:
    """A tenant's ingest over the last `window_s` (minutes with data only count towards the peak)."""

    window_s: float
    requests: int
    events: int
    errors: int
    throttled: int
    peak_events_per_s: float
    latency: dict[str, float | None]
    # Events per second of each minute, oldest first (0 where nothing came): the trend.
    per_minute: tuple[float, ...]

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.window_s if self.window_s > 0 else 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.window_s if self.window_s > 0 else 0.0


def ingest_windows(schemas: Sequence[str], *, minutes: int = 15, now: float | None = None) -> dict[str, IngestWindow]:
    """Each schema's ingest over the last `minutes` whole minutes and the current one, in one pipeline.

    The current minute counts for the part of it that has passed, so the
    rates are not diluted by a minute that has barely begun.
    """
    from beastflow.redis_client import get_redis

    now = time.time() if now is None else now
    current = int(now // MINUTE_S)
    span = list(range(current - minutes, current + 1))
    window_s = minutes * MINUTE_S + max(1.0, now - current * MINUTE_S)
    with get_redis().pipeline(transaction=False) as pipe:
        for schema in schemas:
            for minute in span:
                pipe.hgetall(minute_key(schema, minute))
        replies = pipe.execute()
    windows: dict[str, IngestWindow] = {}
    for n, schema in enumerate(schemas):
        rows = replies[n * len(span) : (n + 1) * len(span)]
        requests = events = errors = throttled = 0
        buckets: dict[int, int] = {}
        per_minute: list[float] = []
        for position, raw in enumerate(rows):
            fields = {k.decode(): int(v) for k, v in (raw or {}).items()}
            requests += fields.get("n", 0)
            events += fields.get("ev", 0)
            errors += fields.get("err", 0)
            throttled += fields.get("thr", 0)
            for name, count in fields.items():
                if name.startswith("b"):
                    buckets[int(name[1:])] = buckets.get(int(name[1:]), 0) + count
            length = MINUTE_S if position < len(span) - 1 else max(1.0, now - current * MINUTE_S)
            per_minute.append(fields.get("ev", 0) / length)
        windows[schema] = IngestWindow(
            window_s=window_s,
            requests=requests,
            events=events,
            errors=errors,
            throttled=throttled,
            # The current minute's rate is noisy while it is young: it counts towards the peak from 20 s on.
            peak_events_per_s=max(per_minute if now - current * MINUTE_S >= 20 else per_minute[:-1] or [0.0]),
            latency=percentiles_ms(buckets),
            per_minute=tuple(per_minute),
        )
    return windows
