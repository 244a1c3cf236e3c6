"""Celery tasks of the engines: thin wrappers, IDs in, the work in services.

Each task runs in the tenant schema it was sent from (tenant-schemas-celery)
and is safe to run twice: a poll takes the source's lease, a dispatch
claims the due sources with a row lock, a reconciliation claims its run.
"""

from __future__ import annotations

from beastflow.celery import app
from beastflow.passes import pass_mark
from beastflow.tasks import fan_out_to_tenants
from engines.models import PollTrigger
from engines.monitor import monitor_tenant, prune_samples
from engines.polling import DISPATCH_CLAIM_S, audits_claim_due, polls_claim_due, source_poll
from engines.reconcile.engine import reconcile_execute
from engines.reconcile.runs import reconciles_claim_due

# A reconciliation pages through a whole snapshot when the upstream has no
# digests: minutes for millions of records, far past the default limits.
RECONCILE_SOFT_TIME_LIMIT_S = 1_800

# Polls of one tenant tick are spread over up to a second, so a thousand
# sources due together do not hit their upstreams in the same instant.
DISPATCH_STAGGER_S = 0.01
DISPATCH_STAGGER_MAX_S = 1.0


@app.task(acks_late=True, ignore_result=True)
def source_poll_task(source_id: int, trigger: str = PollTrigger.SCHEDULE.value) -> None:
    # A deleted source, a live lease (a duplicate delivery) or a paused
    # source make this a no-op inside source_poll.
    source_poll(source_id=source_id, trigger=trigger)


@app.task(ignore_result=True)
def polls_dispatch_task() -> int:
    """Send a poll for every due source of the current tenant, and an audit poll for every
    rest source in event mode due one; returns how many."""
    due = [(source_id, PollTrigger.SCHEDULE.value) for source_id in polls_claim_due()]
    due += [(source_id, PollTrigger.AUDIT.value) for source_id in audits_claim_due()]
    pass_mark("polling")
    for position, (source_id, trigger) in enumerate(due):
        source_poll_task.apply_async(
            args=(source_id, trigger),
            countdown=min(position * DISPATCH_STAGGER_S, DISPATCH_STAGGER_MAX_S),
            # Past its claim the source is due again and will be sent anew:
            # a poll stuck that long in a backlogged queue is dropped, not run twice.
            expires=DISPATCH_CLAIM_S,
        )
    return len(due)


@app.task(ignore_result=True)
def polls_dispatch_all_task() -> int:
    """Beat's entry point: one polls_dispatch_task per ready tenant."""
    return fan_out_to_tenants(polls_dispatch_task)


@app.task(ignore_result=True, expires=5.0)
def monitor_tick_task() -> int:
    """Judge every unpaused source of the current tenant (one monitor tick)."""
    judged = monitor_tenant()
    pass_mark("monitor")
    return judged


@app.task(ignore_result=True)
def monitor_tick_all_task() -> int:
    """Beat's entry point: one monitor tick per ready tenant."""
    return fan_out_to_tenants(monitor_tick_task)


@app.task(ignore_result=True)
def health_samples_prune_task() -> int:
    return prune_samples()


@app.task(ignore_result=True)
def health_samples_prune_all_task() -> int:
    return fan_out_to_tenants(health_samples_prune_task)


@app.task(
    acks_late=True,
    ignore_result=True,
    soft_time_limit=RECONCILE_SOFT_TIME_LIMIT_S,
    time_limit=RECONCILE_SOFT_TIME_LIMIT_S + 60,
)
def source_reconcile_task(run_id: int) -> None:
    # A run already claimed (a redelivery), finished or abandoned makes this
    # a no-op inside reconcile_execute.
    reconcile_execute(run_id=run_id)


@app.task(ignore_result=True)
def reconciles_dispatch_task() -> int:
    """Start every due reconciliation of the current tenant (their tasks are queued, staggered)."""
    started = len(reconciles_claim_due())
    pass_mark("reconciliation")
    return started


@app.task(ignore_result=True)
def reconciles_dispatch_all_task() -> int:
    """Beat's entry point: one reconciles_dispatch_task per ready tenant."""
    return fan_out_to_tenants(reconciles_dispatch_task)
