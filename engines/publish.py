"""After commit: tell the world about new changes (websockets, callbacks).

`changes_committed` runs on the commit path, so it is cheap and never raises:

1. Publish the batch to the tenant's Redis channel, inline (one PUBLISH,
   about 0.1 ms; engines.changes_bus says why not the channel layer). No
   thread hop: under load a hand-off to another thread can wait for the GIL
   for a whole switch interval (5 ms), half the latency budget.
2. Ask for a wake of the tenant's callback deliveries. That enqueues a
   Celery task, which blocks on the broker, so a background thread does
   it, folding the wakes of one schema within WAKE_WINDOW_S into one.

Nothing here is durable, and nothing needs to be: a stream that misses a
batch reads it from the database (engines.changes_stream), and the callback
sweep delivers whatever a lost wake left behind. So with Redis down the
commit still answers 202: a publish fails fast (and pauses), a wake is
dropped (callbacks.wake), each counted in beastflow_publish_failures_total
and beastflow_callback_wakes_lost_total (docs/reliability.md).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
from typing import Any

import redis
import structlog
from prometheus_client import Counter

from beastflow import otel, sansio
from beastflow.sansio import Steps
from engines import changes_bus, outbound

log = structlog.get_logger(__name__)

CHANGES_PUBLISHED = Counter(
    "beastflow_changes_published_total",
    "Changes published after commit, by outcome",
    ["outcome"],  # sent | skipped (Redis failing: paused) | failed
)
PUBLISH_FAILURES = Counter(
    "beastflow_publish_failures_total",
    "Failures after commit that were logged and swallowed, by stage",
    ["stage"],  # publish | wake
)

REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, OSError, TimeoutError)

# Wakes for one schema within this window become one (trailing: a commit
# during the window is covered by the wake at its end).
WAKE_WINDOW_S = 0.02


def changes_committed(schema: str, changes: list[dict[str, Any]]) -> None:
    """Called once per committed batch, after the commit, with its changes in seq order."""
    if changes:
        sansio.run(_committed(schema, changes), lambda _: changes_bus.publish(schema, changes))


async def changes_committed_async(schema: str, changes: list[dict[str, Any]]) -> None:
    """`changes_committed` from an event loop (the fast path's small group commits): the PUBLISH does not block it."""
    if changes:
        await sansio.arun(_committed(schema, changes), lambda _: changes_bus.apublish(schema, changes))


def _committed(schema: str, changes: list[dict[str, Any]]) -> Steps[None]:
    """What follows a commit, for both of the above (beastflow/sansio.py): they differ only in how they PUBLISH."""
    try:
        yield None  # the PUBLISH
        CHANGES_PUBLISHED.labels("sent").inc(len(changes))
    except changes_bus.PublishPausedError:
        CHANGES_PUBLISHED.labels("skipped").inc(len(changes))
    except REDIS_DOWN as exc:
        _publish_lost(schema, changes, exc)
    except Exception:
        CHANGES_PUBLISHED.labels("failed").inc(len(changes))
        PUBLISH_FAILURES.labels("publish").inc()
        log.exception("publish_failed", schema=schema, changes=len(changes))
    try:
        _waker.request(schema)
    except Exception:
        PUBLISH_FAILURES.labels("wake").inc()
        log.exception("publish_wake_request_failed", schema=schema)


def _publish_lost(schema: str, changes: list[dict[str, Any]], exc: BaseException) -> None:
    # Redis unreachable: expected while it is down, so one line without a
    # traceback (the publisher then pauses, and the next failure is a second away).
    CHANGES_PUBLISHED.labels("failed").inc(len(changes))
    PUBLISH_FAILURES.labels("publish").inc()
    log.warning("publish_failed", schema=schema, changes=len(changes), error=f"{type(exc).__name__}: {exc}"[:200])


def flush(timeout_s: float = 2.0) -> bool:
    """Wait until the wakes requested so far were sent; True when they were."""
    return _waker.flush(timeout_s)


class _Waker:
    """One thread per process (re-created after a fork: Celery's prefork workers)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[str, float] = {}  # schema -> when to wake it
        # schema -> trace context of the commit that made the wake due (tracing on only):
        # the delivery task it queues continues that trace (docs/observability.md).
        self._traces: dict[str, Any] = {}
        self._busy = False
        self._pid = 0

    def request(self, schema: str) -> None:
        with self._cond:
            if self._pid != os.getpid():
                self._pid, self._due, self._busy = os.getpid(), {}, False
                threading.Thread(target=self._loop, name="beastflow-wake", daemon=True).start()
            if schema not in self._due:
                self._due[schema] = time.monotonic() + WAKE_WINDOW_S
                self._traces[schema] = otel.current_context()
                self._cond.notify_all()

    def flush(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            if self._pid != os.getpid():
                return True
            while self._due or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.01))
        return True

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._due:
                    self._cond.wait()
                now = time.monotonic()
                ready = [schema for schema, at in self._due.items() if at <= now]
                if not ready:
                    self._cond.wait(min(self._due.values()) - now)
                    continue
                traces = {schema: self._traces.pop(schema, None) for schema in ready}
                for schema in ready:
                    del self._due[schema]
                self._busy = True
            try:
                for schema in ready:
                    with otel.attached(traces[schema]):
                        _wake_callbacks(schema)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


def _wake_callbacks(schema: str) -> None:
    try:
        outbound.announce(outbound.ChangesCommitted(schema))
    except Exception:
        PUBLISH_FAILURES.labels("wake").inc()
        log.exception("publish_wake_failed", schema=schema)


_waker = _Waker()


@atexit.register
def _flush_at_exit() -> None:
    # A worker that exits right after a commit still wakes the deliveries
    # (best effort: the sweep delivers what is lost here).
    with contextlib.suppress(Exception):  # nothing to tell at interpreter exit
        _waker.flush(1.0)
