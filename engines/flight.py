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
from collections.abc import Mapping
from typing import Any

import msgspec

from beastflow.process_buffer import ProcessBuffer

FLUSH_S = 1.0
TTL_S = 3600
DUE_KEY_PARTS = ("flight", "due")


def entries_kept() -> int:
    try:
        return max(0, int(os.environ.get("BEASTFLOW_FLIGHT_RECORDER_ENTRIES", "120")))
    except ValueError:
        return 120


_encoder = msgspec.json.Encoder(enc_hook=str)  # anything JSON has no type for, as its str()


class _Buffer(ProcessBuffer[list[bytes]]):
    def __init__(self, *, flush_in_thread: bool = True) -> None:
        super().__init__(
            name="flight-recorder",
            every_s=FLUSH_S,
            flush=lambda: flush(),
            failure_event="flight_recorder_flush_failed",
            in_thread=flush_in_thread,
        )

    def add(self, source_id: int, entry: bytes) -> None:
        self.started()
        with self.lock:
            self.items.setdefault(source_id, []).append(entry)


_buffer = _Buffer()
_kept = entries_kept()
_flushing = threading.Lock()


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
    # msgspec, not json.dumps: a twentieth of the time, and every judgement pays it (2 against 47 us).
    _buffer.add(source_id, _encoder.encode(entry))


def flush() -> int:
    """Append the buffered judgements to their sources' lists; returns how many were written.

    One flush at a time: a reader's flush (`judgements`) waits for the
    background thread's, else it could read the lists while the entries that
    thread had just taken were not written yet (a recording of 0 judgements).
    """
    from beastflow.redis_client import get_redis

    with _flushing:
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
