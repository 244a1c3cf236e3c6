"""Partitions made ahead and data past retention removed, in one tenant schema (docs/scaling.md).

The plans are engines/partitioning.py's; this module runs them. Every
function takes the schema explicitly and qualifies every name, because it
also runs inside a tenant's creating transaction (tenants.schema_template's
`after_clone` hook) where the search_path is public's.

DDL on a partitioned table locks its parent: creating or dropping a
partition waits for the inserts in flight, and inserts wait behind it. Each
such statement runs under a short lock_timeout, so the ingest path is held
for at most that long; a statement that times out is tried again at the
next pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone
from prometheus_client import Counter

from engines.partitioning import (
    CHANGES,
    HEALTH_SAMPLES,
    TABLES,
    Partition,
    PartitionedTable,
    changes_to_drop,
    to_create,
)
from engines.partitioning import parse_bound as _parse_bound
from engines.partitioning import to_drop as _to_drop

log = structlog.get_logger(__name__)

DDL_LOCK_TIMEOUT = "1s"
EVENTS_TABLE = "engines_event"
EVENTS_BRIN = "event_received_brin"
BRIN_PAGES_PER_RANGE = 128  # PostgreSQL's default, which event_received_brin keeps

PARTITIONS_CREATED = Counter("beastflow_partitions_created_total", "Partitions made ahead of time", ["table"])
PARTITIONS_DROPPED = Counter("beastflow_partitions_dropped_total", "Partitions dropped past retention", ["table"])
ROWS_MOVED = Counter(
    "beastflow_partition_rows_moved_total",
    "Rows moved out of a default partition into a partition made late",
    ["table"],
)
EVENTS_DELETED = Counter("beastflow_retention_events_deleted_total", "Events deleted past retention")
HEALTH_SAMPLES_DELETED = Counter(
    "beastflow_retention_health_samples_deleted_total", "Health samples deleted past retention (partial day)"
)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(at: datetime) -> str:
    return "'" + at.isoformat() + "'"


def _session(cursor: Any) -> None:
    """For the enclosing transaction: bounds read in UTC, and a short wait for locks."""
    cursor.execute(
        "SELECT set_config('TimeZone', 'UTC', true), set_config('lock_timeout', %s, true)", [DDL_LOCK_TIMEOUT]
    )


def partitions_of(cursor: Any, schema: str, spec: PartitionedTable) -> list[Partition]:
    """The table's range partitions (the default one left out)."""
    cursor.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass",
        [f"{_q(schema)}.{_q(spec.table)}"],
    )
    found = (_parse_bound(str(name), str(bound)) for name, bound in cursor.fetchall())
    return sorted(partition for partition in found if partition is not None)


def partitions_ensure(*, schema: str, now: datetime | None = None) -> list[str]:
    """Make the partitions from the current span to a few spans ahead; the names made.

    Steps, per table: read its partitions; plan the missing ones; create each
    (a partition whose range the default partition already holds rows of is
    made by moving those rows into it, so nothing stays in the default).
    """
    now = now or timezone.now()
    made: list[str] = []
    for spec in TABLES:
        with transaction.atomic(), connection.cursor() as cursor:
            _session(cursor)
            for partition in to_create(spec, partitions_of(cursor, schema, spec), now):
                _create(cursor, schema, spec, partition)
                PARTITIONS_CREATED.labels(spec.table).inc()
                made.append(partition.name)
    if made:
        log.info("partitions_created", schema=schema, partitions=made)
    return made


def _create(cursor: Any, schema: str, spec: PartitionedTable, partition: Partition) -> None:
    table, name = f"{_q(schema)}.{_q(spec.table)}", f"{_q(schema)}.{_q(partition.name)}"
    bounds = f"FOR VALUES FROM ({_literal(partition.start)}) TO ({_literal(partition.end)})"
    try:
        with transaction.atomic():
            cursor.execute(f"CREATE TABLE {name} PARTITION OF {table} {bounds}")
        return
    except IntegrityError:
        pass  # the default partition holds rows of this range (the maintenance was down for a while)
    default = f"{_q(schema)}.{_q(spec.default_partition)}"
    column = _q(spec.column)
    cursor.execute(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    cursor.execute(
        f"WITH moved AS (DELETE FROM {default} WHERE {column} >= %s AND {column} < %s RETURNING *) "  # noqa: S608
        f"INSERT INTO {name} SELECT * FROM moved",
        [partition.start, partition.end],
    )
    moved = cursor.rowcount
    cursor.execute(f"ALTER TABLE {table} ATTACH PARTITION {name} {bounds}")
    ROWS_MOVED.labels(spec.table).inc(moved)
    log.warning("partition_made_late", schema=schema, partition=partition.name, rows_moved=moved)


@dataclass
class ChangesDrop:
    dropped: list[str] = field(default_factory=list)
    floor: int = 0
    held_by_subscriptions: bool = False


def changes_drop_before(*, schema: str, cutoff: datetime, keep_after: int | None) -> ChangesDrop:
    """Drop the changes partitions wholly before `cutoff`, keeping every seq above `keep_after`.

    Steps: plan (engines.partitioning.changes_to_drop) from each candidate's
    highest seq; raise SeqCounter.floor to the highest seq to be dropped and
    commit, so that a reader who finds the rows gone also finds the floor
    (readers check the floor after reading); then drop the partitions one at
    a time, each after locking it and checking it holds nothing above the
    floor (a clock stepped back could have put a newer change there).
    """
    result = ChangesDrop()
    with transaction.atomic(), connection.cursor() as cursor:
        _session(cursor)
        existing = partitions_of(cursor, schema, CHANGES)
        max_seq = {p.name: _max_seq(cursor, schema, p.name) for p in _to_drop(existing, cutoff)}
        plan = changes_to_drop(existing, cutoff=cutoff, max_seq=max_seq, min_subscription_cursor=keep_after)
        result.held_by_subscriptions = plan.held_by_subscriptions
        highest = max((seq for p in plan.drop if (seq := max_seq[p.name]) is not None), default=0)
        if highest:
            # The counter row is the one every commit of the tenant locks: touched only when the floor moves.
            cursor.execute(
                f"UPDATE {_q(schema)}.engines_seqcounter SET floor = GREATEST(floor, %s) WHERE id = 1 RETURNING floor",  # noqa: S608
                [highest],
            )
            row = cursor.fetchone()
            result.floor = int(row[0]) if row else 0
        else:
            result.floor = changes_floor(schema)
    for partition in plan.drop:
        if _drop_changes_partition(schema, partition, result.floor):
            result.dropped.append(partition.name)
    if result.dropped:
        log.info("changes_partitions_dropped", schema=schema, partitions=result.dropped, floor=result.floor)
    if result.held_by_subscriptions:
        log.warning("changes_retention_held", schema=schema, keep_after=keep_after, cutoff=cutoff.isoformat())
    return result


def _max_seq(cursor: Any, schema: str, partition: str) -> int | None:
    cursor.execute(f"SELECT max(seq) FROM {_q(schema)}.{_q(partition)}")  # noqa: S608 (catalog names)
    value = cursor.fetchone()[0]
    return None if value is None else int(value)


def _drop_changes_partition(schema: str, partition: Partition, floor: int) -> bool:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            _session(cursor)
            cursor.execute(f"LOCK TABLE {_q(schema)}.{_q(partition.name)} IN ACCESS EXCLUSIVE MODE")
            highest = _max_seq(cursor, schema, partition.name)
            if highest is not None and highest > floor:
                log.error(
                    "changes_partition_kept", schema=schema, partition=partition.name, max_seq=highest, floor=floor
                )
                return False
            cursor.execute(f"DROP TABLE {_q(schema)}.{_q(partition.name)}")
    except OperationalError as exc:  # lock_timeout: busy now, the next pass tries again
        log.info("partition_drop_deferred", schema=schema, partition=partition.name, error=str(exc).strip())
        return False
    PARTITIONS_DROPPED.labels(CHANGES.table).inc()
    return True


def health_samples_drop_before(*, schema: str, cutoff: datetime) -> tuple[list[str], int]:
    """Drop the health-sample partitions wholly before `cutoff`, then delete the older rows of the one across it.

    Returns the partitions dropped and the rows deleted; samples are kept
    exactly for the retention period, as before partitioning.
    """
    dropped: list[str] = []
    with transaction.atomic(), connection.cursor() as cursor:
        _session(cursor)
        candidates = _to_drop(partitions_of(cursor, schema, HEALTH_SAMPLES), cutoff)
    for partition in candidates:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                _session(cursor)
                cursor.execute(f"DROP TABLE {_q(schema)}.{_q(partition.name)}")
        except OperationalError as exc:
            log.info("partition_drop_deferred", schema=schema, partition=partition.name, error=str(exc).strip())
            continue
        PARTITIONS_DROPPED.labels(HEALTH_SAMPLES.table).inc()
        dropped.append(partition.name)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {_q(schema)}.engines_healthsample WHERE at < %s", [cutoff])  # noqa: S608
        deleted = cursor.rowcount
    HEALTH_SAMPLES_DELETED.inc(deleted)
    return dropped, deleted


def events_delete_before(
    *, schema: str, cutoff: datetime, batch: int = 5_000, budget_s: float = 20.0, pause_s: float = 0.02
) -> int:
    """Delete events received before `cutoff` in batches, for at most `budget_s`; the number deleted.

    Each batch is its own short transaction (the ingest path never waits
    long on it); the BRIN index finds the old rows. The index ranges a batch
    emptied are unsummarized, so that the next VACUUM summarizes them from
    what remains: without it a range refilled with new events would keep its
    old minimum and be read by every later pass.
    """
    table = f"{_q(schema)}.{_q(EVENTS_TABLE)}"
    deleted = 0
    ranges: set[int] = set()
    deadline = time.monotonic() + budget_s
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} WHERE ctid = ANY(ARRAY("  # noqa: S608 (catalog names)
                f"SELECT ctid FROM {table} WHERE received_at < %s LIMIT %s)) "
                "RETURNING (ctid::text::point)[0]::bigint",
                [cutoff, batch],
            )
            blocks = [int(row[0]) for row in cursor.fetchall()]
        deleted += len(blocks)
        ranges.update(block - block % BRIN_PAGES_PER_RANGE for block in blocks)
        if len(blocks) < batch or time.monotonic() >= deadline:
            break
        time.sleep(pause_s)
    if ranges:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(brin_desummarize_range(%s::regclass, r)) FROM unnest(%s::bigint[]) AS r",
                [f"{_q(schema)}.{_q(EVENTS_BRIN)}", sorted(ranges)],
            )
    EVENTS_DELETED.inc(deleted)
    return deleted


def changes_floor(schema: str | None = None) -> int:
    """The retention floor of the changes feed: a resume with `after` below it has lost changes."""
    prefix = f"{_q(schema)}." if schema else ""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT floor FROM {prefix}engines_seqcounter WHERE id = 1")  # noqa: S608
        row = cursor.fetchone()
    return int(row[0]) if row else 0
