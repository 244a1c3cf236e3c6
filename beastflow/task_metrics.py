"""Celery tasks on /metrics: sent (by web, beat or another task), run and how long, by task name.

Connected to Celery's signals by beastflow.celery, so every process that
sends or runs tasks counts them; with the multiprocess folder set by the
launcher, /metrics sums beat's and every worker's counts (beastflow/metrics.py).
Task names are the registered tasks: a bounded label.
"""

from __future__ import annotations

import time
from typing import Any

from celery import signals
from prometheus_client import Counter, Histogram

SENT = Counter("beastflow_tasks_sent_total", "Celery tasks published (beat's schedule, the web, other tasks)", ["task"])
RUN = Counter("beastflow_tasks_total", "Celery tasks run by the workers, by final state", ["task", "state"])
RUN_SECONDS = Histogram(
    "beastflow_task_seconds",
    "Time a worker spent running one task",
    ["task"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 150),
)

# task id -> perf_counter at prerun; a pool process runs one task at a time, so this stays tiny.
_started: dict[str, float] = {}


@signals.before_task_publish.connect
def _count_sent(sender: str | None = None, **_: Any) -> None:
    SENT.labels(sender or "unknown").inc()


@signals.task_prerun.connect
def _start_clock(task_id: str | None = None, **_: Any) -> None:
    if task_id is not None:
        _started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _count_run(task: Any = None, task_id: str | None = None, state: str | None = None, **_: Any) -> None:
    name = getattr(task, "name", None) or "unknown"
    started = _started.pop(task_id, None) if task_id is not None else None
    if started is not None:
        RUN_SECONDS.labels(name).observe(time.perf_counter() - started)
    RUN.labels(name, (state or "unknown").lower()).inc()
