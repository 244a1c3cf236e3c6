"""Time partitions of the growing tables and their retention, as pure plans (no ORM, no I/O).

`engines_change` (by `committed_at`, a week a partition) and
`engines_healthsample` (by `at`, a day a partition) are range-partitioned,
each with a DEFAULT partition that catches whatever no range covers, so an
insert never fails for want of a partition. engines/partitions.py carries
the plans out: partitions are made ahead of time and dropped whole once every
row in them is past retention. Partition bounds are aligned to whole spans
counted from a Monday at midnight UTC (EPOCH), so every tenant's partitions
line up and a partition's name says its first day.

See docs/scaling.md for why the event log is not partitioned.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# Spans are counted from a Monday at midnight UTC: weekly partitions start on Mondays.
EPOCH = datetime(1970, 1, 5, tzinfo=UTC)


@dataclass(frozen=True)
class PartitionedTable:
    table: str
    column: str
    span: timedelta
    # Spans made ahead of the current one: the partition maintenance task may
    # be down that long before rows start landing in the default partition.
    ahead: int

    @property
    def default_partition(self) -> str:
        return f"{self.table}_default"


CHANGES = PartitionedTable("engines_change", "committed_at", span=timedelta(days=7), ahead=2)
HEALTH_SAMPLES = PartitionedTable("engines_healthsample", "at", span=timedelta(days=1), ahead=3)
TABLES = (CHANGES, HEALTH_SAMPLES)


@dataclass(frozen=True, order=True)
class Partition:
    start: datetime
    end: datetime
    name: str = ""


def span_start(at: datetime, span: timedelta) -> datetime:
    """The start of the span holding `at` (spans counted from EPOCH)."""
    spans = (at - EPOCH) // span
    return EPOCH + spans * span


def partition_name(table: str, start: datetime) -> str:
    if start.hour or start.minute or start.second or start.microsecond:
        return f"{table}_p{start:%Y%m%d_%H%M%S}"
    return f"{table}_p{start:%Y%m%d}"


def to_create(spec: PartitionedTable, existing: Iterable[Partition], now: datetime) -> list[Partition]:
    """The partitions that cover from the current span to `ahead` spans later, minus what exists.

    Steps: the wanted range is [start of now's span, that + (ahead + 1) spans);
    walk it a span at a time; a span an existing partition overlaps is cut to
    the part outside it (partitions made with another span, or by hand, never
    overlap a new one: PostgreSQL would refuse it).
    """
    taken = sorted((p.start, p.end) for p in existing)
    begin = span_start(now, spec.span)
    stop = begin + (spec.ahead + 1) * spec.span
    wanted: list[Partition] = []
    start = begin
    while start < stop:
        end = start + spec.span
        for gap_start, gap_end in _gaps(start, end, taken):
            wanted.append(Partition(gap_start, gap_end, partition_name(spec.table, gap_start)))
        start = end
    return wanted


def _gaps(start: datetime, end: datetime, taken: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    gaps = []
    cursor = start
    for taken_start, taken_end in taken:
        if taken_end <= cursor or taken_start >= end:
            continue
        if taken_start > cursor:
            gaps.append((cursor, taken_start))
        cursor = max(cursor, taken_end)
        if cursor >= end:
            break
    if cursor < end:
        gaps.append((cursor, end))
    return gaps


def to_drop(existing: Iterable[Partition], cutoff: datetime) -> list[Partition]:
    """The partitions whose every row is older than `cutoff` (their end is at or before it), oldest first."""
    return sorted(p for p in existing if p.end <= cutoff)


_BOUND = re.compile(r"FOR VALUES FROM \('([^']+)'\) TO \('([^']+)'\)")


def parse_bound(name: str, bound: str) -> Partition | None:
    """A range partition from its `pg_get_expr(relpartbound)` text (read with TimeZone UTC); None for DEFAULT."""
    match = _BOUND.fullmatch(bound.strip())
    if match is None:
        return None
    return Partition(_timestamp(match.group(1)), _timestamp(match.group(2)), name)


def _timestamp(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace(" ", "T"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ChangesFloor:
    """What changes retention may drop and the floor that results.

    `floor` is the highest seq no longer kept (0: none dropped): a reader
    resuming with `after >= floor` misses nothing; one with `after < floor`
    is told the changes are gone (410) instead of silently skipping them.
    """

    drop: list[Partition]
    held_by_subscriptions: bool


def changes_to_drop(
    existing: Iterable[Partition],
    *,
    cutoff: datetime,
    max_seq: dict[str, int | None],
    min_subscription_cursor: int | None,
) -> ChangesFloor:
    """Partitions of changes past retention that no subscription still needs, oldest first.

    A callback subscription (active or disabled: a disabled one may be
    re-enabled and resume from its cursor) needs every change after its
    cursor, so a partition holding any seq above the lowest cursor is kept,
    and so is every later one: the floor only moves over a contiguous prefix.
    `max_seq` gives each partition's highest seq (None when empty).
    """
    drop = []
    held = False
    for partition in to_drop(existing, cutoff):
        highest = max_seq.get(partition.name)
        if highest is not None and min_subscription_cursor is not None and highest > min_subscription_cursor:
            held = True
            break
        drop.append(partition)
    return ChangesFloor(drop=drop, held_by_subscriptions=held)
