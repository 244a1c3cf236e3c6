"""Thin Celery tasks of outbound callbacks; the logic is in callbacks.services."""

from __future__ import annotations

import structlog

from beastflow.celery import app
from beastflow.passes import pass_mark
from beastflow.tasks import fan_out_to_tenants
from beastflow.tenancy import current_schema
from callbacks import services, wake

log = structlog.get_logger(__name__)

# Retries due sooner than this get a task of their own; later ones are left
# to the sweep, so a long backoff does not park tasks in the broker.
RETRY_TASK_MAX_S = 30.0


@app.task(ignore_result=True)
def callbacks_deliver_task(sweep: bool = False) -> None:
    """Deliver the current tenant's due subscriptions (sent in the tenant's schema).

    Woken after commits (engines.publish) and by the sweep. Safe to run
    twice at once: each subscription is delivered under a lease.
    """
    schema = current_schema()
    wake.wake_taken(schema)
    generation = wake.idle_generation(schema)
    summary = services.deliveries_run()
    if not services.has_active_subscriptions():
        wake.mark_idle(schema, generation=generation)
    if sweep:
        services.deliveries_prune()
        pass_mark("callbacks")
    if summary.more:
        callbacks_deliver_task.apply_async()
    elif summary.retry_in_s is not None and summary.retry_in_s <= RETRY_TASK_MAX_S:
        wake.schedule_retry(schema, summary.retry_in_s)


@app.task(ignore_result=True)
def callbacks_sweep_task() -> int:
    """The clock's entry point: every tenant delivers what is due (retries, lost wakes)."""
    return fan_out_to_tenants(callbacks_deliver_task, sweep=True)
