"""Celery tasks of healing: thin wrappers around healing.queue."""

from __future__ import annotations

import time

from beastflow.celery import app
from beastflow.passes import pass_mark
from beastflow.tasks import fan_out_to_tenants
from beastflow.tenancy import current_schema
from healing import metrics
from healing.health_checks import backlog_note
from healing.queue import healing_tick, queue_backlog_age_s


@app.task(ignore_result=True, expires=10.0)
def healing_tick_task() -> dict[str, int]:
    """The current tenant's failure queue, verifications, escalations and recoveries.

    Safe to run twice at once: the queue is claimed with SKIP LOCKED and
    every state change is a compare-and-set.
    """
    started = time.perf_counter()
    done = healing_tick()
    metrics.TICK_SECONDS.observe(time.perf_counter() - started)
    backlog_note(current_schema(), queue_backlog_age_s())
    pass_mark("healing")
    return done


@app.task(ignore_result=True)
def healing_tick_all_task() -> int:
    """Beat's entry point: one healing tick per ready tenant."""
    return fan_out_to_tenants(healing_tick_task)
