"""Thin Celery tasks of outbound callbacks; the logic is in callbacks.services."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.utils import timezone

from beastflow.celery import app
from beastflow.tenancy import current_schema, current_tenant
from callbacks import services, wake
from scheduling.fairshare import tier_weight
from scheduling.rounds import tenant_round
from scheduling.services import tenant_due_at

log = structlog.get_logger(__name__)

# Retries due sooner than this get a task of their own; later ones are left
# to the sweep, so a long backoff does not park tasks in the broker.
RETRY_TASK_MAX_S = 30.0
# Tenants swept per round, and how long a claimed sweep stays claimed.
SWEEP_LIMIT = 500
SWEEP_CLAIM_S = 60.0


@app.task(ignore_result=True)
def callbacks_deliver_task(sweep: bool = False, lease: str | None = None) -> None:
    """Deliver the current tenant's due subscriptions (sent in the tenant's schema).

    Woken after commits (engines.publish) and by the sweep. Safe to run
    twice at once: each subscription is delivered under a lease. A run
    lasts at most its tenant's slice (BEASTFLOW_CALLBACKS_SLICE_S times its
    tier's weight) and then queues its continuation behind the other
    tenants' runs: tenants take turns on the callbacks workers.
    """
    schema = current_schema()
    tenant = current_tenant()
    wake.wake_taken(schema)
    generation = wake.idle_generation(schema)
    policy = services.delivery_policy()
    slice_s = settings.BEASTFLOW_CALLBACKS_SLICE_S * tier_weight(str(tenant.tier), settings.BEASTFLOW_TIER_WEIGHTS)
    present, active = services.subscriptions_present()
    summary = None
    if active:
        summary = services.deliveries_run(policy=replace(policy, run_budget_s=min(policy.run_budget_s, slice_s)))
        if sweep:
            # A mark whose invalidation was lost: wakes go through again. Only a
            # sweep can find one; a woken run got past the mark already.
            wake.idle_clear(schema)
    else:
        wake.mark_idle(schema, generation=generation)
    if sweep:
        if present:  # deliveries go with their subscription: without any, nothing to prune
            services.deliveries_prune()
        idle_s = settings.BEASTFLOW_CALLBACKS_IDLE_SWEEP_S * random.uniform(0.8, 1.0)  # spread, like healing's
        wait_s = settings.BEASTFLOW_CALLBACKS_SWEEP_S if active else idle_s
        tenant_due_at(
            tenant.pk,
            "next_sweep_at",
            timezone.now() + timedelta(seconds=wait_s),
            lease=datetime.fromisoformat(lease) if lease else None,
        )
    if summary is None:
        return
    if summary.more:
        callbacks_deliver_task.apply_async()
    elif summary.retry_in_s is not None and summary.retry_in_s <= RETRY_TASK_MAX_S:
        wake.schedule_retry(schema, summary.retry_in_s)


@app.task(ignore_result=True)
def callbacks_sweep_task() -> int:
    """The clock's entry point: a sweep for every tenant whose sweep is due (retries, lost wakes).

    As far as the callbacks queue has room (wakes' deliveries count too).
    """
    return tenant_round(
        "next_sweep_at",
        queue="callbacks",
        bound=settings.BEASTFLOW_CALLBACKS_SWEEPS_IN_FLIGHT,
        limit=SWEEP_LIMIT,
        lease_s=SWEEP_CLAIM_S,
        send=lambda claim: callbacks_deliver_task.apply_async(
            kwargs={"sweep": True, "lease": claim.lease_until.isoformat()}, expires=claim.lease_until
        ),
        engine="callbacks",
    )


# A closure, not the bound method: reading the task's attributes here would
# finalize the Celery app while Django is still loading the apps.
wake.deliver_task_register(lambda **options: callbacks_deliver_task.apply_async(**options))
