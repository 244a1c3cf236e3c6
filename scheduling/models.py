"""Public-schema deadlines: when each source and each tenant next needs work.

One row per source (keyed by its global id, like SourceRoute) and one per
tenant. The claimers (scheduling/claims.py) find due work across every
tenant with one indexed query instead of asking each schema in turn; the
engines keep the deadlines current (see docs/scheduling.md).

A table of their own rather than columns on SourceRoute: these rows are
rewritten every time a source is judged or polled, and SourceRoute is read
by the ingest path to find a signed webhook's tenant. Keeping the churn
(dead tuples, index updates) off that table keeps its reads cheap.
"""

from __future__ import annotations

from django.db import models

from tenants.models import SourceRoute, Tenant


class SourceSchedule(models.Model):
    """When the monitor, the poller and the reconciler next look at one source.

    NULL means "nothing scheduled" (a paused source, a source in event mode
    for the poller). A time in the future while work is queued is the
    claim's lease: if the work is lost the source is due again then.
    """

    source = models.OneToOneField(
        SourceRoute, primary_key=True, on_delete=models.CASCADE, related_name="schedule", db_column="source_id"
    )
    # Denormalised from the route: claims group by tenant (fair share, schema) without a join.
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    next_eval_at = models.DateTimeField(null=True, blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    next_reconcile_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # Partial: only scheduled rows are ever searched for.
            models.Index(
                fields=["next_eval_at"], name="sched_eval_due", condition=models.Q(next_eval_at__isnull=False)
            ),
            models.Index(
                fields=["next_poll_at"], name="sched_poll_due", condition=models.Q(next_poll_at__isnull=False)
            ),
            models.Index(
                fields=["next_reconcile_at"],
                name="sched_reconcile_due",
                condition=models.Q(next_reconcile_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"source {self.pk} schedule"


class TenantSchedule(models.Model):
    """When a tenant next needs a healing pass and a callbacks sweep.

    Rows are created by the dispatchers for every ready tenant that has
    none (scheduling.claims.tenant_schedules_fill), so tenant provisioning
    needs to know nothing about them.
    """

    tenant = models.OneToOneField(Tenant, primary_key=True, on_delete=models.CASCADE, related_name="schedule")
    next_healing_at = models.DateTimeField(null=True, blank=True)
    next_sweep_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["next_healing_at"],
                name="sched_healing_due",
                condition=models.Q(next_healing_at__isnull=False),
            ),
            models.Index(
                fields=["next_sweep_at"], name="sched_sweep_due", condition=models.Q(next_sweep_at__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"tenant {self.pk} schedule"
