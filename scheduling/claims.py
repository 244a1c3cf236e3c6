"""Claiming due work across every tenant: one indexed query, `FOR UPDATE SKIP LOCKED`.

A claim moves the deadline of what it took to `now + lease`: the claimer
(or the task it queued) owns the work until then, and when the work is
lost (a worker died, a message expired) it is simply due again at that
time. Two claimers running at once (two workers, two machines) skip each
other's locked rows and never take the same work.

- `evals_claim`: the monitor's due judgements, oldest first.
- `sources_claim_fair`: due polls or reconciliations, at most `capacity`,
  shared between tenants by weight (scheduling.fairshare), so one tenant's
  backlog cannot hold another tenant's single due poll.
- `tenants_claim`: tenants whose healing pass or callbacks sweep is due.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from scheduling.fairshare import fair_shares, tier_weight
from scheduling.models import SourceSchedule, TenantSchedule
from tenants.models import Tenant

_SOURCES = SourceSchedule._meta.db_table
_TENANTS = TenantSchedule._meta.db_table
_TENANT_TABLE = Tenant._meta.db_table
_FAIR_COLUMNS = ("next_poll_at", "next_reconcile_at")
_TENANT_COLUMNS = ("next_healing_at", "next_sweep_at")


@dataclass(frozen=True)
class Claim:
    """One claimed unit of work: whose it is, when it was due, and until when we own it."""

    id: int  # the source id, or the tenant id for tenant work
    tenant_id: int
    due_at: datetime
    lease_until: datetime


def evals_claim(
    *,
    limit: int,
    lease_s: float,
    due_by: datetime | None = None,
    coalesce_s: float = 0.0,
    now: datetime | None = None,
) -> list[Claim]:
    """Up to `limit` judgements due by `due_by` (default now), most overdue first, with their tenants' next ones.

    A `due_by` a little ahead lets a pass that runs once a tick take what
    falls due before the next pass: without it a source judged every tick
    would meet its deadline a hair after each pass and always wait one tick
    more. `coalesce_s`: a tenant with a source due also has its sources due
    within that much later taken (up to `limit` more), so its schema is
    visited once for several of them: with a thousand tenants, visiting a
    schema costs more than judging a source in it.
    """
    now = now or timezone.now()
    due_by = due_by or now
    lease = now + timedelta(seconds=lease_s)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH due AS (
                SELECT source_id, tenant_id, next_eval_at FROM {_SOURCES}
                WHERE next_eval_at <= %(now)s
                ORDER BY next_eval_at
                LIMIT %(limit)s
                FOR UPDATE SKIP LOCKED
            ),
            near AS (
                SELECT source_id, tenant_id, next_eval_at FROM {_SOURCES}
                WHERE tenant_id IN (SELECT tenant_id FROM due)
                  AND next_eval_at > %(now)s AND next_eval_at <= %(near)s
                ORDER BY next_eval_at
                LIMIT %(limit)s
                FOR UPDATE SKIP LOCKED
            ),
            taken AS (SELECT * FROM due UNION ALL SELECT * FROM near)
            UPDATE {_SOURCES} AS s SET next_eval_at = %(lease)s
            FROM taken WHERE s.source_id = taken.source_id
            RETURNING s.source_id, taken.tenant_id, taken.next_eval_at
            """,  # noqa: S608 (fixed names)
            {"now": due_by, "near": due_by + timedelta(seconds=coalesce_s), "limit": limit, "lease": lease},
        )
        rows = cursor.fetchall()
    return sorted((Claim(row[0], row[1], row[2], lease) for row in rows), key=lambda c: c.due_at)


def due_by_tenant(column: str, *, now: datetime | None = None) -> dict[int, tuple[int, datetime]]:
    """Per tenant: how many sources are due in `column`, and since when the oldest."""
    if column not in _FAIR_COLUMNS:
        raise ValueError(f"not a fair-shared deadline: {column!r}")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tenant_id, count(*), min({column}) FROM {_SOURCES} "  # noqa: S608 (fixed names)
            f"WHERE {column} <= %s GROUP BY tenant_id",
            [now or timezone.now()],
        )
        return {tenant_id: (count, oldest) for tenant_id, count, oldest in cursor.fetchall()}


def sources_claim_fair(
    column: str,
    *,
    capacity: int,
    lease_s: float,
    weights: Mapping[str, float] | None = None,
    now: datetime | None = None,
) -> list[Claim]:
    """Claim up to `capacity` sources due in `column`, shared between tenants by tier weight.

    Steps: count the due sources per tenant (one GROUP BY on the partial
    index), split the capacity (fair_shares), then claim each tenant's
    most overdue sources up to its share in one statement. The returned
    claims interleave tenants (round robin, most overdue first), so the
    queue they are sent to serves tenants alternately too.
    """
    now = now or timezone.now()
    if capacity <= 0:
        return []
    due = due_by_tenant(column, now=now)
    if not due:
        return []
    tiers = dict(Tenant.objects.filter(pk__in=list(due)).values_list("pk", "tier"))
    shares = fair_shares(
        {tenant: count for tenant, (count, _) in due.items()},
        {tenant: tier_weight(str(tiers.get(tenant, "")), weights) for tenant in due},
        capacity,
        waiting_since={tenant: oldest.timestamp() for tenant, (_, oldest) in due.items()},
    )
    allocation = [{"tenant_id": tenant, "n": n} for tenant, n in shares.items() if n > 0]
    if not allocation:
        return []
    lease = now + timedelta(seconds=lease_s)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH alloc AS (
                SELECT * FROM jsonb_to_recordset(%(alloc)s::jsonb) AS a(tenant_id bigint, n int)
            ),
            ranked AS (
                SELECT s.source_id, s.tenant_id, s.{column} AS due_at,
                       row_number() OVER (PARTITION BY s.tenant_id ORDER BY s.{column}, s.source_id) AS rn
                FROM {_SOURCES} AS s JOIN alloc AS a ON a.tenant_id = s.tenant_id
                WHERE s.{column} <= %(now)s
            ),
            picked AS (
                SELECT s.source_id, r.tenant_id, r.due_at, r.rn
                FROM {_SOURCES} AS s
                JOIN ranked AS r ON r.source_id = s.source_id
                JOIN alloc AS a ON a.tenant_id = r.tenant_id
                WHERE r.rn <= a.n AND s.{column} <= %(now)s
                FOR UPDATE OF s SKIP LOCKED
            )
            UPDATE {_SOURCES} AS s SET {column} = %(lease)s
            FROM picked WHERE s.source_id = picked.source_id
            RETURNING s.source_id, picked.tenant_id, picked.due_at, picked.rn
            """,  # noqa: S608 (fixed names)
            {"alloc": json.dumps(allocation), "now": now, "lease": lease},
        )
        rows = cursor.fetchall()
    # Round robin between tenants: every tenant's first, then every tenant's second, ...
    rows.sort(key=lambda row: (row[3], row[2], row[0]))
    return [Claim(row[0], row[1], row[2], lease) for row in rows]


def tenant_schedules_fill(*, now: datetime | None = None) -> int:
    """Give every ready tenant without a schedule row one, with everything due now; returns how many."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {_TENANTS} (tenant_id, next_healing_at, next_sweep_at)
            SELECT t.id, %(now)s, %(now)s FROM {_TENANT_TABLE} AS t
            WHERE t.ready AND t.schema_name <> 'public'
              AND NOT EXISTS (SELECT 1 FROM {_TENANTS} AS s WHERE s.tenant_id = t.id)
            ON CONFLICT (tenant_id) DO NOTHING
            """,  # noqa: S608 (fixed names)
            {"now": now},
        )
        return int(cursor.rowcount)


def tenants_claim(column: str, *, limit: int, lease_s: float, now: datetime | None = None) -> list[Claim]:
    """Up to `limit` ready tenants whose `column` work is due, most overdue first."""
    if column not in _TENANT_COLUMNS:
        raise ValueError(f"not a tenant deadline: {column!r}")
    now = now or timezone.now()
    lease = now + timedelta(seconds=lease_s)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH due AS (
                SELECT s.tenant_id, s.{column} AS due_at FROM {_TENANTS} AS s
                JOIN {_TENANT_TABLE} AS t ON t.id = s.tenant_id AND t.ready
                WHERE s.{column} <= %(now)s
                ORDER BY s.{column}
                LIMIT %(limit)s
                FOR UPDATE OF s SKIP LOCKED
            )
            UPDATE {_TENANTS} AS s SET {column} = %(lease)s
            FROM due WHERE s.tenant_id = due.tenant_id
            RETURNING s.tenant_id, due.due_at
            """,  # noqa: S608 (fixed names)
            {"now": now, "limit": limit, "lease": lease},
        )
        rows = cursor.fetchall()
    return sorted((Claim(row[0], row[0], row[1], lease) for row in rows), key=lambda c: c.due_at)


def oldest_due_eval(*, now: datetime | None = None) -> tuple[int, float]:
    """How many judgements are due, and how long the oldest has waited (s; 0 when none)."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), min(next_eval_at) FROM {_SOURCES} WHERE next_eval_at <= %s",  # noqa: S608
            [now],
        )
        row = cursor.fetchone()
    count, oldest = (row or (0, None))[0], (row or (0, None))[1]
    return int(count), 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
