"""Per-key numbers a process gathers on a hot path, flushed by a daemon thread of its own, per process.

The ingest capacity recorder (observability/ingest_capacity.py) and the
monitor's flight recorder (engines/flight.py) both keep what they measure in
process memory, keyed by source id, and write it out every few seconds in
one Redis pipeline, so the hot path pays a dict update, never a round trip.

A fork (uvicorn --workers, Celery's prefork pool) inherits no running thread
and a copy of the parent's buffer: the first `started()` in a new process
empties the copy (the parent flushes its own) and starts this process's
flusher. Subclasses add under `lock` to `items`; `take()` hands them over.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)

V = TypeVar("V")


class ProcessBuffer(Generic[V]):
    def __init__(
        self, *, name: str, every_s: float, flush: Callable[[], object], failure_event: str, in_thread: bool = True
    ) -> None:
        self.lock = threading.Lock()
        self.items: dict[int, V] = {}
        self._name, self._every_s, self._flush, self._failure_event = name, every_s, flush, failure_event
        # A buffer kept for a measurement (bench/observability_overhead.py) starts no flusher.
        self._pid = 0 if in_thread else os.getpid()

    def started(self) -> None:
        """Called before each add: in a process new to this buffer, start its flusher."""
        if self._pid == os.getpid():
            return
        with self.lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self.items = {}
            threading.Thread(target=self._flush_forever, name=self._name, daemon=True).start()

    def take(self) -> dict[int, V]:
        with self.lock:
            taken, self.items = self.items, {}
        return taken

    def _flush_forever(self) -> None:
        from django.db import close_old_connections

        while True:
            time.sleep(self._every_s)
            try:
                self._flush()
            except Exception:
                # Redis or the database away: what was taken is lost, the next flush tries again.
                log.warning(self._failure_event, exc_info=True)
            finally:
                close_old_connections()  # this thread's connection, if the flush opened one
