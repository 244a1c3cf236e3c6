"""A source the batched judge cannot take blinds the monitor to itself only."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from engines.dispatch import monitor_claim_pass
from engines.models import Source
from scheduling.models import SourceSchedule, TenantSchedule
from tests.conftest import Persona
from tests.factories import make_source


def test_a_tenant_the_batch_cannot_read_does_not_stop_the_other_tenants_judgements(
    alice: Persona, charlie: Persona, db: None
) -> None:
    # given: only these two sources are due, one per tenant, and globex's stream table is unreadable
    SourceSchedule.objects.update(next_eval_at=None, next_poll_at=None, next_reconcile_at=None)
    TenantSchedule.objects.update(next_healing_at=None, next_sweep_at=None)
    with tenant_context(alice.tenant):
        fine, _ = make_source("judged-anyway")
    with tenant_context(charlie.tenant):
        broken, _ = make_source("unreadable")
    due = timezone.now() - timedelta(seconds=1)
    SourceSchedule.objects.filter(pk__in=[fine.pk, broken.pk]).update(next_eval_at=due)
    with connection.cursor() as cursor:  # rolled back with the test's transaction
        cursor.execute(f"ALTER TABLE {charlie.tenant.schema_name}.engines_streamstate RENAME TO streamstate_gone")
    # when
    judged = monitor_claim_pass(budget_s=5, batch=10, lease_s=30)
    # then: acme's source was judged and rescheduled; globex's keeps its claim for a later try
    assert judged == 1
    with tenant_context(alice.tenant):
        assert Source.objects.get(pk=fine.pk).verdict in ("good", "bad")
    with tenant_context(charlie.tenant):
        assert Source.objects.get(pk=broken.pk).verdict == ""
