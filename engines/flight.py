"""The monitor's flight recorder: what each judgement of a source was decided from, kept briefly in Redis.

A failure recording (observability/recording.py) needs the monitor's inputs
around the failure, judgement by judgement: the stream signals, the stored
hysteresis state and mode, and the source's hysteresis and health config.
The monitor notes them here as it computes them (engines.monitor.signals_for);
a daemon thread per process appends them, once a second and in one
pipeline, to a capped list per source, `flight:<source id>` (source ids are
global), so the judge's batches pay a dict append per source, not a round trip.

Bounded: the newest BEASTFLOW_FLIGHT_RECORDER_ENTRIES judgements per source
(default 120: two minutes of a moving stream judged every second, hours of
a quiet one), about 0.4 KB each, expiring TTL_S after the last one. 0
turns the recorder off. Redis may lose it: a recording then has fewer
judgements, never wrong ones.

A monitor switch that degrades a source also marks the moment (`mark_degraded`):
the observability tick records the failure once its window after has passed.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

import structlog

log = structlog.get_logger(__name__)

FLUSH_S = 1.0
TTL_S = 3600
DUE_KEY_PARTS = ("flight", "due")


def entries_kept() -> int:
    try:
        return max(0, int(os.environ.get("BEASTFLOW_FLIGHT_RECORDER_ENTRIES", "120")))
    except ValueError:
        return 120


class _Buffer:
    def __init__(self, *, flush_in_thread: bool = True) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, list[str]] = {}
        # A buffer kept for a measurement (bench/observability_overhead.py) starts no flusher.
        self._pid = 0 if flush_in_thread else os.getpid()

    def add(self, source_id: int, entry: str) -> None:
        if self._pid != os.getpid():
            self._start()
        with self._lock:
            self._entries.setdefault(source_id, []).append(entry)

    def take(self) -> dict[int, list[str]]:
        with self._lock:
            taken, self._entries = self._entries, {}
        return taken

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._entries = {}  # a forked child starts empty: the parent flushes its own
            threading.Thread(target=_flush_forever, name="flight-recorder", daemon=True).start()


_buffer = _Buffer()
_kept = entries_kept()


def source_key(source_id: int) -> str:
    from beastflow.redis_client import key

    return key("flight", source_id)


def note(
    *, source_id: int, now: float, signals: Mapping[str, Any], mode: str, state: Any, config: Mapping[str, Any]
) -> None:
    """One judgement's inputs (called by the monitor for every source it judges)."""
    if _kept <= 0:
        return
    entry = {"t": now, "mode": mode, "state": state or None, "signals": dict(signals), **config}
    _buffer.add(source_id, json.dumps(entry, separators=(",", ":"), default=str))


def flush() -> int:
    """Append the buffered judgements to their sources' lists; returns how many were written."""
    from beastflow.redis_client import get_redis

    taken = _buffer.take()
    if not taken:
        return 0
    with get_redis().pipeline(transaction=False) as pipe:
        for source_id, entries in taken.items():
            name = source_key(source_id)
            pipe.rpush(name, *entries)
            pipe.ltrim(name, -_kept, -1)
            pipe.expire(name, TTL_S)
        pipe.execute()
    return sum(len(entries) for entries in taken.values())


def _flush_forever() -> None:
    while True:
        time.sleep(FLUSH_S)
        try:
            flush()
        except Exception:
            log.warning("flight_recorder_flush_failed", exc_info=True)


def judgements(source_id: int, *, since: float, until: float) -> list[dict[str, Any]]:
    """The recorded judgements of a source between two times, oldest first (what this process buffered included)."""
    from beastflow.redis_client import get_redis

    flush()
    found = []
    for raw in get_redis().lrange(source_key(source_id), 0, -1):
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if since <= float(entry.get("t", 0)) <= until:
            found.append(entry)
    return sorted(found, key=lambda entry: float(entry["t"]))


def mark_degraded(*, schema: str, source_id: int, at: float) -> None:
    """A monitor switch out of event mode: record the failure once its window after `at` has passed."""
    from beastflow.redis_client import get_redis, key

    if _kept <= 0:
        return
    get_redis().zadd(key(*DUE_KEY_PARTS), {f"{schema}:{source_id}:{at:.3f}": at})
