"""Writing deadlines: what the engines call when they learn when work is next due.

Every write here is one statement on the public schema's schedule tables,
callable from any schema (django-tenants keeps `public` on the search path).
Two kinds of write:

- `*_at`: the engine that owns the work knows exactly when it is next due
  (a poll just planned its next one, a judge computed its next deadline).
- `*_wake`: something changed that may make the work due sooner (a switch,
  a config change, a new failure). A wake only ever moves a deadline
  earlier, so it can never postpone work another engine scheduled.

The invariant the claimers rely on: a row's deadline is never later than
the time the work really becomes due. It may be earlier: the dispatcher
then finds nothing to do and writes the true time back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime

from django.db import connection
from django.utils import timezone

from scheduling.models import SourceSchedule, TenantSchedule
from tenants.models import Tenant

_SOURCES = SourceSchedule._meta.db_table
_TENANTS = TenantSchedule._meta.db_table
_SOURCE_COLUMNS = ("next_eval_at", "next_poll_at", "next_reconcile_at")
_TENANT_COLUMNS = ("next_healing_at", "next_sweep_at")


def source_schedule_add(*, source_id: int, tenant_id: int, judge: bool = True, reconcile: bool = True) -> None:
    """A new source: everything due now (its judgement only with `judge`, its reconciliation only with
    `reconcile`); the engines find out what it needs."""
    now = timezone.now()
    SourceSchedule.objects.update_or_create(
        source_id=source_id,
        defaults={
            "tenant_id": tenant_id,
            "next_eval_at": now if judge else None,
            "next_poll_at": now,
            "next_reconcile_at": now if reconcile else None,
        },
    )


def source_wake(source_id: int, *, judge: bool = True, poll: bool = False, reconcile: bool = False) -> None:
    """Make the source's judgement (and poll, reconciliation) due now, unless due sooner already."""
    columns = [c for c, on in zip(_SOURCE_COLUMNS, (judge, poll, reconcile), strict=True) if on]
    if not columns:
        return
    assignments = ", ".join(f"{c} = LEAST(COALESCE({c}, %(now)s), %(now)s)" for c in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_SOURCES} SET {assignments} WHERE source_id = %(id)s",  # noqa: S608 (fixed names)
            {"now": timezone.now(), "id": source_id},
        )


def source_polls_at(source_ids: Sequence[int], at: datetime | None) -> None:
    """The next poll of these sources is due at `at` (None: they are not polled)."""
    if source_ids:
        SourceSchedule.objects.filter(source_id__in=list(source_ids)).update(next_poll_at=at)


def source_deadlines_set(
    column: str, rows: Iterable[tuple[int, datetime | None]], *, leases: dict[int, datetime] | None = None
) -> None:
    """Set each source's `column` deadline to its own time, in one statement (see source_evals_set for `leases`)."""
    _set_many(_SOURCES, "source_id", column, _SOURCE_COLUMNS, rows, leases=leases)


def source_evals_set(rows: Iterable[tuple[int, datetime | None]], *, leases: dict[int, datetime] | None) -> None:
    """The judge's new deadlines, in one statement.

    `leases`: the claim each source was judged under. A row that no
    longer holds its lease was woken meanwhile (a switch, a config change):
    then the earlier of the two times wins, so the wake is not lost.
    """
    _set_many(_SOURCES, "source_id", "next_eval_at", _SOURCE_COLUMNS, rows, leases=leases)


def tenant_wake(
    *, tenant_id: int | None = None, schema: str | None = None, healing: bool = False, sweep: bool = False
) -> None:
    """Make the tenant's healing pass (or callbacks sweep) due now; creates its row if need be.

    The tenant is given by id or by schema name.
    """
    columns = [c for c, on in zip(_TENANT_COLUMNS, (healing, sweep), strict=True) if on]
    if not columns or (tenant_id is None and schema is None):
        return
    inserted = ", ".join("%(now)s" if c in columns else "NULL" for c in _TENANT_COLUMNS)
    assignments = ", ".join(f"{c} = LEAST(COALESCE({_TENANTS}.{c}, %(now)s), %(now)s)" for c in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_TENANTS} (tenant_id, {', '.join(_TENANT_COLUMNS)}) "  # noqa: S608 (fixed names)
            f"SELECT t.id, {inserted} FROM {Tenant._meta.db_table} AS t "
            "WHERE t.id = %(id)s OR t.schema_name = %(schema)s "
            f"ON CONFLICT (tenant_id) DO UPDATE SET {assignments}",
            {"now": timezone.now(), "id": tenant_id, "schema": schema},
        )


def tenant_due_at(tenant_id: int, column: str, at: datetime | None, *, lease: datetime | None = None) -> None:
    """The tenant's next healing pass or sweep is due at `at`.

    With `lease` (the claim the pass ran under), a wake that came in
    meanwhile is kept when it is earlier.
    """
    _set_many(
        _TENANTS, "tenant_id", column, _TENANT_COLUMNS, [(tenant_id, at)], leases={tenant_id: lease} if lease else None
    )


def _set_many(
    table: str,
    key: str,
    column: str,
    allowed: tuple[str, ...],
    rows: Iterable[tuple[int, datetime | None]],
    *,
    leases: dict[int, datetime] | None,
) -> None:
    if column not in allowed:
        raise ValueError(f"unknown deadline column {column!r}")
    payload = [
        {
            "id": row_id,
            "at": None if at is None else at.isoformat(),
            "lease": None if leases is None or row_id not in leases else leases[row_id].isoformat(),
        }
        for row_id, at in rows
    ]
    if not payload:
        return
    # Held its lease (or none was given): ours. Woken meanwhile: the earlier one.
    value = (
        f"CASE WHEN v.lease IS NULL OR t.{column} IS NOT DISTINCT FROM v.lease THEN v.at "
        f"ELSE LEAST(t.{column}, COALESCE(v.at, t.{column})) END"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS t SET {column} = {value} "  # noqa: S608 (fixed names)
            "FROM jsonb_to_recordset(%s::jsonb) AS v(id bigint, at timestamptz, lease timestamptz) "
            f"WHERE t.{key} = v.id",
            [json.dumps(payload)],
        )
