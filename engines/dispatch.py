"""The engines' side of the scheduler: due work claimed across tenants, done per schema.

`scheduling.claims` finds what is due in the public schedule; here it is
handed to each tenant's schema: judged in batches (the monitor), or sent
as tasks (polls, reconciliations) after the tenant's own rows confirm it
is due. Whatever turns out not to be due gets its true deadline written
back, so the schedule converges on the engines' truth.

Runs in the public schema (beat sends these tasks without a tenant);
each tenant's part runs in `tenant_context`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import tenant_context
from prometheus_client import Counter

from engines.judge import judge_claims
from engines.models import PollTrigger
from engines.monitor import gap_fills_take
from engines.polling import DISPATCH_CLAIM_S, audits_claim_due, poll_deadlines, polls_claim_due
from engines.reconcile.runs import reconcile_deadlines, reconciles_claim_due
from engines.source_ops import request_poll
from scheduling.claims import Claim, evals_claim, sources_claim_fair
from scheduling.queues import queue_room
from scheduling.services import source_deadlines_set
from tenants.models import Tenant

log = structlog.get_logger(__name__)

DISPATCHED = Counter("beastflow_dispatched_total", "Work claimed by the scheduler and handed out", ["kind"])

# A claimed reconciliation not started by then (its tenant's dispatch failed) is due again.
RECONCILE_CLAIM_S = 60.0


def _by_tenant(claims: Sequence[Claim]) -> Iterator[tuple[Tenant, list[Claim]]]:
    """The claims grouped per ready tenant (a tenant gone or not ready keeps its claims until their lease ends)."""
    groups: dict[int, list[Claim]] = defaultdict(list)
    for claim in claims:
        groups[claim.tenant_id].append(claim)
    tenants = Tenant.objects.in_bulk(list(groups))
    for tenant_id, group in groups.items():
        tenant = tenants.get(tenant_id)
        if tenant is not None and tenant.ready:
            yield tenant, group


def _leases(claims: Sequence[Claim]) -> dict[int, datetime]:
    return {claim.id: claim.lease_until for claim in claims}


# -- the monitor -------------------------------------------------------------------


def monitor_claim_pass(
    *, budget_s: float, batch: int, lease_s: float, horizon_s: float = 0.0, coalesce_s: float = 0.0
) -> int:
    """Judge due sources in batches until none is due or `budget_s` is spent; returns how many.

    `horizon_s`: also what falls due that much later than the pass began
    (half a tick: each source is then judged within half a tick of its
    deadline, either side). Fixed at the start, so a source judged in this
    pass, whose next deadline is at least a tick away, is not taken again.
    `coalesce_s`: see scheduling.claims.evals_claim.
    """
    stop_at = time.monotonic() + budget_s
    due_by = timezone.now() + timedelta(seconds=horizon_s)
    judged = 0
    while time.monotonic() < stop_at:
        claims = evals_claim(limit=batch, lease_s=lease_s, due_by=due_by, coalesce_s=coalesce_s)
        if not claims:
            break
        judged += _judge(claims)
        if len(claims) < batch:
            break
    return judged


def _judge(claims: Sequence[Claim]) -> int:
    """One batch, whatever the number of tenants in it (engines/judge.py names each schema's tables).

    A batch that fails as a whole (one schema or one row the batched
    statements cannot take) is judged again tenant by tenant, and a tenant
    that fails again source by source: a poisoned source blinds the monitor
    to itself only, never to the batch it was claimed with (its claim is
    retried when the lease ends).
    """
    groups = list(_by_tenant(claims))
    try:
        # Each attempt is a transaction of its own: a statement that fails
        # leaves nothing half written for the next attempt to trip on.
        with transaction.atomic():
            return judge_claims(groups)
    except Exception:
        log.exception("monitor_batch_failed", sources=len(claims), tenants=len(groups))
    judged = 0
    for tenant, group in groups:
        try:
            with transaction.atomic():
                judged += judge_claims([(tenant, group)])
            continue
        except Exception:
            log.exception("monitor_tenant_batch_failed", tenant=tenant.slug, sources=len(group))
        for claim in group:
            try:
                with transaction.atomic():
                    judged += judge_claims([(tenant, [claim])])
            except Exception:
                log.exception("monitor_source_failed", tenant=tenant.slug, source=claim.id)
    return judged


# -- polls -----------------------------------------------------------------------


def polls_dispatch() -> int:
    """Send the due polls, audits and gap fills, at most what the polls queue has room for, fairly between tenants."""
    # A poll sent now must start within its claim (DISPATCH_CLAIM_S) or it expires unrun.
    capacity = queue_room("polls", settings.BEASTFLOW_POLLS_IN_FLIGHT, max_wait_s=DISPATCH_CLAIM_S / 2)
    claims = sources_claim_fair(
        "next_poll_at", capacity=capacity, lease_s=DISPATCH_CLAIM_S, weights=settings.BEASTFLOW_TIER_WEIGHTS
    )
    triggers: dict[int, str] = {}
    tenants: dict[int, Tenant] = {}
    for tenant, group in _by_tenant(claims):
        try:
            with tenant_context(tenant):
                ids = [claim.id for claim in group]
                for source_id in polls_claim_due(source_ids=ids, limit=len(ids)):
                    triggers[source_id] = PollTrigger.SCHEDULE.value
                rest = [i for i in ids if i not in triggers]
                for source_id in audits_claim_due(source_ids=rest, limit=len(rest)) if rest else []:
                    triggers[source_id] = PollTrigger.AUDIT.value
                # The gap fills the monitor asked for (event mode has no poll schedule of its own).
                rest = [i for i in ids if i not in triggers]
                for source_id in gap_fills_take(tenant.schema_name, rest):
                    triggers[source_id] = PollTrigger.GAP_FILL.value
                # Not due after all (a poll ran meanwhile, the mode changed): the true time goes back.
                idle = [i for i in ids if i not in triggers]
                if idle:
                    source_deadlines_set("next_poll_at", poll_deadlines(idle).items(), leases=_leases(group))
                tenants[tenant.pk] = tenant
        except Exception:
            log.exception("polls_dispatch_failed", tenant=tenant.slug, sources=len(group))
    # In the claims' order, which takes tenants in turns: the queue serves them alternately.
    sent = 0
    for claim in claims:
        if claim.id not in triggers or claim.tenant_id not in tenants:
            continue
        with tenant_context(tenants[claim.tenant_id]):
            # Expires with the claim: from then on the source is due again and is sent anew.
            request_poll(claim.id, triggers[claim.id], expires=claim.lease_until)
        sent += 1
    DISPATCHED.labels("poll").inc(sent)
    return sent


# -- reconciliations ------------------------------------------------------------


def reconciles_dispatch() -> int:
    """Start the due reconciliations, at most what the reconcile queue has room for, fairly between tenants."""
    capacity = queue_room("reconcile", settings.BEASTFLOW_RECONCILES_IN_FLIGHT, max_wait_s=RECONCILE_CLAIM_S / 2)
    claims = sources_claim_fair(
        "next_reconcile_at", capacity=capacity, lease_s=RECONCILE_CLAIM_S, weights=settings.BEASTFLOW_TIER_WEIGHTS
    )
    started = 0
    for tenant, group in _by_tenant(claims):
        try:
            with tenant_context(tenant):
                ids = [claim.id for claim in group]
                started += len(reconciles_claim_due(source_ids=ids, limit=len(ids), stagger_s=0.0))
                # Started ones are busy now: looked at again later; the rest get their true time.
                source_deadlines_set("next_reconcile_at", reconcile_deadlines(ids).items(), leases=_leases(group))
        except Exception:
            log.exception("reconciles_dispatch_failed", tenant=tenant.slug, sources=len(group))
    DISPATCHED.labels("reconcile").inc(started)
    return started
