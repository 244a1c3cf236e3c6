"""One dispatch round of tenant-level work: a healing pass, a callbacks sweep.

Both rounds are the same: every ready tenant gets a schedule row, the
round asks its queue how much room it has (scheduling.queues.queue_room:
depth and the oldest message's age), claims that many due tenants, most
overdue first, and sends each one's task in its own schema with the
claim's lease as expiry. The tenants it had no room for stay due in the
schedule, not in the queue, so a slow worker delays them rather than
growing a backlog that expires unrun.
"""

from __future__ import annotations

from collections.abc import Callable

from django_tenants.utils import tenant_context

from beastflow.passes import pass_mark
from scheduling.claims import Claim, tenant_schedules_fill, tenants_claim
from scheduling.queues import queue_room
from tenants.models import Tenant


def tenant_round(
    column: str,
    *,
    queue: str,
    bound: int,
    limit: int,
    lease_s: float,
    send: Callable[[Claim], None],
    engine: str,
) -> int:
    """Send `send(claim)` for each due tenant the queue has room for; returns how many were claimed.

    `bound`: the queue's depth the round fills up to; `limit`: tenants per
    round whatever the room; `engine`: the pass mark `/readyz` reads.
    A claimed message must start within its lease or it expires unrun, so
    the queue has no room while its oldest message has waited half of one.
    """
    tenant_schedules_fill()
    room = min(limit, queue_room(queue, bound, max_wait_s=lease_s / 2))
    claims = tenants_claim(column, limit=room, lease_s=lease_s) if room else []
    tenants = Tenant.objects.in_bulk([claim.tenant_id for claim in claims])
    for claim in claims:
        tenant = tenants.get(claim.tenant_id)
        if tenant is not None:
            with tenant_context(tenant):
                send(claim)
    pass_mark(engine)
    return len(claims)
