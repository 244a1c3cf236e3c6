"""The durable commit path: one transaction for many events (DESIGN.md, ingest steps 3-4).

Every way a change enters BeastFlow (push, poll, reconcile) goes through
`commit_batches`, so dedup, version ordering and seq numbering are written
once. The caller owns the transaction (and, outside Django, the schema's
search_path); this module only issues statements on the cursor it is given.

Locks, always in this order, so concurrent committers cannot deadlock:
1. the StreamState rows of the batch's sources (sorted by id): serialises
   writers of one source, so the version check and the record upsert see a
   consistent state;
2. the tenant's SeqCounter row, taken last and held to commit: seqs are
   handed out in commit order, the property the changes feed relies on.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import msgspec

from engines import seqtrack
from engines.health import update_expected_interval
from engines.ingest.plan import Current, RecordWrite, plan
from engines.ingest.validation import Event

# Learned inter-arrival bounds (s): a source can't be expected faster than
# the floor nor be called silent only after more than the ceiling.
EXPECTED_FLOOR_S = 0.05
EXPECTED_CEILING_S = 3_600.0
EXPECTED_ALPHA = 0.2


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchone(self) -> Any: ...


@dataclass(frozen=True)
class PendingBatch:
    source_id: int
    events: list[Event]
    origin: str = "push"


@dataclass
class BatchResult:
    accepted: int = 0
    duplicates: int = 0
    stale: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)
    source_missing: bool = False


_LOCK_STREAMS = """
SELECT source_id, contiguous_seq, highest_seq, pending_seqs, last_event_at, expected_interval_s
FROM engines_streamstate WHERE source_id = ANY(%s) ORDER BY source_id FOR UPDATE
"""

# Rows travel as one JSON array per statement (json_to_recordset): msgspec
# encodes it in C and PostgreSQL parses it in one pass, where text arrays cost
# a regex-escaping pass per element in Python (the ingest path's hot spot).
_INSERT_EVENTS = """
INSERT INTO engines_event
    (source_id, event_id, type, key, version, upstream_seq, data, origin, occurred_at, received_at)
SELECT %s, e.i, e.t, e.k, e.v, e.s, e.d, %s, e.o, %s
FROM json_to_recordset(%s::json) AS e(i text, t text, k text, v bigint, s bigint, d jsonb, o timestamptz)
ON CONFLICT (source_id, event_id) DO NOTHING
RETURNING event_id
"""

_CURRENT = """
SELECT key, version, deleted FROM engines_record
WHERE source_id = %s AND key = ANY(ARRAY(SELECT json_array_elements_text(%s::json)))
"""

_NEXT_SEQS = "UPDATE engines_seqcounter SET last = last + %s WHERE id = 1 RETURNING last"

_INSERT_CHANGES = """
INSERT INTO engines_change (seq, source_id, event_id, type, key, version, data, origin, committed_at)
SELECT c.q, c.s, c.i, c.t, c.k, c.v, c.d, c.o, %s
FROM json_to_recordset(%s::json) AS c(q bigint, s bigint, i text, t text, k text, v bigint, d jsonb, o text)
"""

_UPSERT_RECORDS = """
INSERT INTO engines_record (source_id, key, version, data, hash, deleted, change_seq, updated_at)
SELECT %s, r.k, r.v, r.d, r.h, r.x, r.q, %s
FROM json_to_recordset(%s::json) AS r(k text, v bigint, d jsonb, h text, x boolean, q bigint)
ON CONFLICT (source_id, key) DO UPDATE SET
    version = EXCLUDED.version, data = EXCLUDED.data, hash = EXCLUDED.hash, deleted = EXCLUDED.deleted,
    change_seq = CASE WHEN EXCLUDED.change_seq > 0 THEN EXCLUDED.change_seq ELSE engines_record.change_seq END,
    updated_at = EXCLUDED.updated_at
WHERE engines_record.version < EXCLUDED.version
"""

_UPDATE_STREAM = """
UPDATE engines_streamstate SET
    contiguous_seq = %s, highest_seq = %s, pending_seqs = %s::jsonb,
    upstream_seq = GREATEST(upstream_seq, %s),
    last_event_at = COALESCE(%s, last_event_at),
    last_push_at = COALESCE(%s, last_push_at),
    last_heartbeat_at = COALESCE(%s, last_heartbeat_at),
    expected_interval_s = %s,
    events_total = events_total + %s, duplicates_total = duplicates_total + %s,
    changes_total = changes_total + %s, updated_at = %s
WHERE source_id = %s
"""


_encode = msgspec.json.Encoder()


def _rows(rows: list[dict[str, Any]]) -> str:
    return _encode.encode(rows).decode()


def _insert_events(cursor: Cursor, batch: PendingBatch, events: list[Event], now: datetime) -> set[str]:
    rows = [
        {"i": e.id, "t": e.type, "k": e.key, "v": e.version, "s": e.seq, "d": e.data, "o": e.occurred_at}
        for e in events
    ]
    cursor.execute(_INSERT_EVENTS, [batch.source_id, batch.origin, now, _rows(rows)])
    return {row[0] for row in cursor.fetchall()}


def _current(cursor: Cursor, source_id: int, keys: list[str]) -> dict[str, Current]:
    if not keys:
        return {}
    cursor.execute(_CURRENT, [source_id, _rows(keys)])  # type: ignore[arg-type]
    return {key: Current(version=version, deleted=deleted) for key, version, deleted in cursor.fetchall()}


@dataclass
class _SourceWork:
    current: dict[str, Current]
    writes: dict[str, RecordWrite] = field(default_factory=dict)
    change_slot: dict[str, int] = field(default_factory=dict)  # key -> index into the commit's changes
    seqs: list[int] = field(default_factory=list)
    upstream_seq: int | None = None
    heartbeat: bool = False
    pushed: bool = False
    new_events: int = 0
    duplicates: int = 0
    changes: int = 0


def commit_batches(cursor: Cursor, batches: Sequence[PendingBatch], *, now: datetime) -> list[BatchResult]:
    """Commit several batches in the caller's transaction; one result per batch.

    Steps: lock the sources' stream rows; per batch, insert its events
    (duplicates fall out on the unique index) and plan the changes of the new
    ones against each key's running state; take the tenant's seq counter for
    all changes at once; write changes and final record states; fold seqs and
    counters into the stream rows.
    """
    results = [BatchResult() for _ in batches]
    source_ids = sorted({batch.source_id for batch in batches})
    cursor.execute(_LOCK_STREAMS, [source_ids])
    streams = {row[0]: row for row in cursor.fetchall()}

    work: dict[int, _SourceWork] = {}
    keys_by_source: dict[int, set[str]] = defaultdict(set)
    for batch in batches:
        keys_by_source[batch.source_id].update(e.key for e in batch.events if e.type != "heartbeat")
    for source_id in source_ids:
        if source_id in streams:
            work[source_id] = _SourceWork(current=_current(cursor, source_id, sorted(keys_by_source[source_id])))

    pending_changes: list[tuple[int, int, Event]] = []  # (batch position, source, event)
    for position, batch in enumerate(batches):
        result = results[position]
        source = work.get(batch.source_id)
        if source is None:
            result.source_missing = True
            continue
        heartbeats = [e for e in batch.events if e.type == "heartbeat"]
        events = [e for e in batch.events if e.type != "heartbeat"]
        new_ids = _insert_events(cursor, batch, events, now) if events else set()
        fresh = [e for e in events if e.id in new_ids]
        result.accepted = len(fresh) + len(heartbeats)
        result.duplicates = len(events) - len(fresh)
        decided = plan(fresh, source.current)
        result.stale = decided.stale
        base = len(pending_changes)
        pending_changes.extend((position, batch.source_id, event) for event in decided.changes)
        for write in decided.writes:
            source.writes[write.key] = write
            source.current[write.key] = Current(version=write.version, deleted=write.deleted)
            if write.change_index >= 0:
                source.change_slot[write.key] = base + write.change_index
        source.seqs.extend(e.seq for e in batch.events if e.seq is not None and e.type != "heartbeat")
        for beat in heartbeats:
            source.heartbeat = True
            if beat.seq is not None:
                source.upstream_seq = max(beat.seq, source.upstream_seq or beat.seq)
        source.pushed = source.pushed or (batch.origin == "push" and bool(batch.events))
        source.new_events += len(fresh)
        source.duplicates += result.duplicates
        source.changes += len(decided.changes)

    seqs: list[int] = []
    if pending_changes:
        cursor.execute(_NEXT_SEQS, [len(pending_changes)])
        last = cursor.fetchone()[0]
        seqs = list(range(last - len(pending_changes) + 1, last + 1))
        _insert_changes(cursor, batches, pending_changes, seqs, now)
        committed_at = now.isoformat()
        for (position, source_id, event), seq in zip(pending_changes, seqs, strict=True):
            results[position].changes.append(_render(seq, source_id, batches[position].origin, event, committed_at))

    for source_id, source in work.items():
        _write_records(cursor, source_id, source, seqs, now)
        _update_stream(cursor, source_id, streams[source_id], source, now)
    return results


def _render(seq: int, source_id: int, origin: str, event: Event, committed_at: str) -> dict[str, Any]:
    return {
        "seq": seq,
        "source": source_id,
        "event_id": event.id,
        "type": event.type,
        "key": event.key,
        "version": event.version,
        "data": event.data,
        "origin": origin,
        "committed_at": committed_at,
    }


def _insert_changes(
    cursor: Cursor,
    batches: Sequence[PendingBatch],
    pending: list[tuple[int, int, Event]],
    seqs: list[int],
    now: datetime,
) -> None:
    rows = [
        {
            "q": seq,
            "s": source_id,
            "i": event.id,
            "t": event.type,
            "k": event.key,
            "v": event.version,
            "d": event.data,
            "o": batches[position].origin,
        }
        for (position, source_id, event), seq in zip(pending, seqs, strict=True)
    ]
    cursor.execute(_INSERT_CHANGES, [now, _rows(rows)])


def _write_records(cursor: Cursor, source_id: int, source: _SourceWork, seqs: list[int], now: datetime) -> None:
    if not source.writes:
        return
    rows = [
        {
            "k": w.key,
            "v": w.version,
            "d": w.data,
            "h": w.hash,
            "x": w.deleted,
            "q": seqs[source.change_slot[w.key]] if w.key in source.change_slot else 0,
        }
        for w in source.writes.values()
    ]
    cursor.execute(_UPSERT_RECORDS, [source_id, now, _rows(rows)])


def _update_stream(cursor: Cursor, source_id: int, row: Any, source: _SourceWork, now: datetime) -> None:
    _, contiguous, highest, pending, last_event_at, expected = row
    if isinstance(pending, str):  # Django's cursor leaves jsonb undecoded; raw psycopg decodes it
        pending = json.loads(pending)
    state = seqtrack.advance(
        seqtrack.SeqState(contiguous=contiguous, pending=tuple(pending or ()), highest=highest), source.seqs
    )
    arrived = source.new_events > 0 or source.duplicates > 0
    if source.pushed and arrived and last_event_at is not None:
        gap_s = max(0.0, (now - last_event_at).total_seconds())
        expected = update_expected_interval(
            expected, gap_s, alpha=EXPECTED_ALPHA, floor_s=EXPECTED_FLOOR_S, ceiling_s=EXPECTED_CEILING_S
        )
    cursor.execute(
        _UPDATE_STREAM,
        [
            state.contiguous,
            state.highest,
            json.dumps(list(state.pending)),
            source.upstream_seq,
            now if arrived else None,
            now if source.pushed else None,
            now if source.heartbeat else None,
            expected,
            source.new_events,
            source.duplicates,
            source.changes,
            now,
            source_id,
        ],
    )
