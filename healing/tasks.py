"""Celery tasks of healing: thin wrappers around healing.queue."""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from beastflow.celery import app
from beastflow.tenancy import current_schema, current_tenant
from healing import metrics
from healing.health_checks import backlog_note
from healing.queue import healing_has_work, healing_next_due, healing_tick, queue_backlog_age_s
from scheduling.rounds import tenant_round
from scheduling.services import tenant_due_at

# Tenants given a pass per dispatch round, and how long one claimed stays claimed.
DISPATCH_LIMIT = 500
CLAIM_S = 60.0


@app.task(ignore_result=True, expires=10.0)
def healing_tick_task(lease: str | None = None) -> dict[str, int]:
    """The current tenant's failure queue, verifications, escalations and recoveries.

    Safe to run twice at once: the queue is claimed with SKIP LOCKED and
    every state change is a compare-and-set. Ends by saying when the
    tenant's next pass is due (healing.queue.healing_next_due).
    """
    started = time.perf_counter()
    busy = healing_has_work()
    done = healing_tick() if busy else dict.fromkeys(("analysed", "verified", "escalated", "recovered"), 0)
    metrics.TICK_SECONDS.observe(time.perf_counter() - started)
    backlog_note(current_schema(), queue_backlog_age_s() if busy else None)
    now = timezone.now()
    if not busy:
        # Nothing open: what would make a pass due sooner (a new failure, an
        # operator's decision) wakes the tenant (healing.services.healing_wake).
        at = now + timedelta(seconds=settings.BEASTFLOW_HEALING_IDLE_S * random.uniform(0.8, 1.0))
    elif any(done.values()):
        at = now + timedelta(seconds=settings.BEASTFLOW_HEALING_TICK_S)  # it moved: look again soon
    else:
        # An idle tenant's pass is jittered: tenants made together do not all come due together.
        idle_s = settings.BEASTFLOW_HEALING_IDLE_S * random.uniform(0.8, 1.0)
        at = healing_next_due(now=now, tick_s=settings.BEASTFLOW_HEALING_TICK_S, idle_s=idle_s)
    tenant_due_at(current_tenant().pk, "next_healing_at", at, lease=datetime.fromisoformat(lease) if lease else None)
    return done


@app.task(ignore_result=True)
def healing_dispatch_task() -> int:
    """Beat's entry point: a healing pass for every tenant whose pass is due (docs/scheduling.md)."""
    return tenant_round(
        "next_healing_at",
        queue="healing",
        bound=settings.BEASTFLOW_HEALING_IN_FLIGHT,
        limit=DISPATCH_LIMIT,
        lease_s=CLAIM_S,
        send=lambda claim: healing_tick_task.apply_async(
            kwargs={"lease": claim.lease_until.isoformat()}, expires=claim.lease_until
        ),
        engine="healing",
    )
