"""Celery tasks of the engines: thin wrappers, IDs in, the work in services.

Each task runs in the tenant schema it was sent from (tenant-schemas-celery);
the dispatchers beat sends run in the public schema and find due work
across tenants (engines/dispatch.py, docs/scheduling.md). Every task is
safe to run twice: a poll takes the source's lease, a dispatch claims the
due sources with SKIP LOCKED, a reconciliation claims its run.
"""

from __future__ import annotations

from django.conf import settings

from beastflow import otel
from beastflow.celery import app
from beastflow.passes import pass_mark
from beastflow.tasks import fan_out_to_tenants
from beastflow.tenancy import current_schema
from beastflow.tracing import stage
from engines import sending
from engines.dispatch import monitor_claim_pass, polls_dispatch, reconciles_dispatch
from engines.models import PollTrigger
from engines.monitor import TICK_SECONDS, prune_samples
from engines.polling import source_poll
from engines.reconcile.engine import reconcile_execute
from engines.switching import switch_trace_name
from engines.watch import watch_stamp

# A reconciliation pages through a whole snapshot when the upstream has no
# digests: minutes for millions of records, far past the default limits.
RECONCILE_SOFT_TIME_LIMIT_S = 1_800


@app.task(acks_late=True, ignore_result=True)
def source_poll_task(source_id: int, trigger: str = PollTrigger.SCHEDULE.value) -> None:
    # A deleted source, a live lease (a duplicate delivery) or a paused
    # source make this a no-op inside source_poll. The poll is linked to the
    # switch that made it due, if one did lately (tracing on only).
    links = otel.links_to(switch_trace_name(current_schema(), source_id))
    with otel.span("poll", links=links, attributes={"beastflow.source": source_id, "beastflow.trigger": trigger}):
        source_poll(source_id=source_id, trigger=trigger)


@app.task(ignore_result=True)
def polls_dispatch_task() -> int:
    """Beat's entry point: send the due polls and audits of every tenant, fairly; returns how many."""
    sent = polls_dispatch()
    pass_mark("polling")
    return sent


@app.task(ignore_result=True)
def monitor_claim_task() -> int:
    """Beat's entry point: judge the sources whose deadline passed, across tenants, for up to two ticks."""
    with stage("monitor.tick", TICK_SECONDS):
        # Before any judgement: a pass that ends an outage of BeastFlow's own
        # records it first, so none of this pass's judgements counts it as silence.
        watch_stamp()
        judged = monitor_claim_pass(
            budget_s=max(1.0, 2 * settings.BEASTFLOW_MONITOR_TICK_S),
            batch=settings.BEASTFLOW_MONITOR_BATCH,
            lease_s=settings.BEASTFLOW_MONITOR_LEASE_S,
            horizon_s=settings.BEASTFLOW_MONITOR_TICK_S / 2,
            coalesce_s=settings.BEASTFLOW_MONITOR_COALESCE_S,
        )
    pass_mark("monitor")
    return judged


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
    """Beat's entry point: start the due reconciliations of every tenant, fairly; returns how many."""
    started = reconciles_dispatch()
    pass_mark("reconciliation")
    return started


# The engines queue these two through engines.sending (they cannot import this module).
sending.tasks_register(poll=source_poll_task, reconcile=source_reconcile_task)
