"""The durable commit path: one transaction for many events (docs/ingest.md, "The commit: four statements").

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

A commit costs four statements however many batches and sources it holds
(a group commit of 32 single-event webhooks used to cost 32 event inserts):
lock the stream rows; insert every event and read the keys' current records;
update the stream rows; take the seqs, insert the changes and upsert the
records. What needs no database state (event rows, record hashes) is
prepared before the first lock, and the SeqCounter lock, the one every
writer of the tenant waits for, is held for one statement and the COMMIT.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
#
# One statement inserts the events of every batch (a row repeating an id of
# an earlier row falls out on the unique index like any duplicate) and reads
# the current record of every key they touch: the join walks the unique
# (source, key) index once per key, whatever the table's statistics say.
_INSERT_EVENTS_READ_CURRENT = """
WITH inserted AS (
    INSERT INTO engines_event
        (source_id, event_id, type, key, version, upstream_seq, data, origin, occurred_at, received_at)
    SELECT e.s, e.i, e.t, e.k, e.v, e.q, e.d, e.g, e.o, %s
    FROM json_to_recordset(%s::json)
        AS e(s bigint, i text, t text, k text, v bigint, q bigint, d jsonb, g text, o timestamptz)
    WHERE EXISTS (SELECT 1 FROM engines_streamstate st WHERE st.source_id = e.s)
    ON CONFLICT (source_id, event_id) DO NOTHING
    RETURNING source_id, event_id
)
SELECT TRUE, source_id, event_id, 0, FALSE FROM inserted
UNION ALL
SELECT FALSE, r.source_id, r.key, r.version, r.deleted
FROM json_to_recordset(%s::json) AS w(s bigint, k text)
JOIN engines_record r ON r.source_id = w.s AND r.key = w.k
"""

_UPDATE_STREAMS = """
UPDATE engines_streamstate AS s SET
    contiguous_seq = u.c, highest_seq = u.h, pending_seqs = u.p,
    upstream_seq = GREATEST(s.upstream_seq, u.u),
    last_event_at = COALESCE(u.le, s.last_event_at),
    last_push_at = COALESCE(u.lp, s.last_push_at),
    last_heartbeat_at = COALESCE(u.lh, s.last_heartbeat_at),
    expected_interval_s = u.x,
    events_total = s.events_total + u.n, duplicates_total = s.duplicates_total + u.d,
    changes_total = s.changes_total + u.ch, updated_at = %s
FROM json_to_recordset(%s::json) AS u(
    id bigint, c bigint, h bigint, p jsonb, u bigint, le timestamptz, lp timestamptz, lh timestamptz,
    x double precision, n bigint, d bigint, ch bigint)
WHERE s.source_id = u.id
"""

# Seqs, changes and records in one statement: the counter row is locked from
# here to the COMMIT. The changes' committed_at is read under that lock, so
# it never goes backwards along seq and leaves out the wait for the lock and
# the connection. A change's seq is base + its position (`q`); a record
# write points at the seq of the change that produced it (`c`, -1 for none:
# a tombstone of an absent key keeps the row's change_seq).
_SEQS_CHANGES_RECORDS = """
WITH counter AS (
    UPDATE engines_seqcounter SET last = last + %s WHERE id = 1
    RETURNING last - %s + 1 AS base, clock_timestamp() AS at
),
changes AS (
    INSERT INTO engines_change (seq, source_id, event_id, type, key, version, data, origin, committed_at)
    SELECT counter.base + c.q, c.s, c.i, c.t, c.k, c.v, c.d, c.o, counter.at
    FROM counter, json_to_recordset(%s::json)
        AS c(q bigint, s bigint, i text, t text, k text, v bigint, d jsonb, o text)
),
records AS (
    INSERT INTO engines_record (source_id, key, version, data, hash, deleted, change_seq, updated_at)
    SELECT r.s, r.k, r.v, r.d, r.h, r.x, CASE WHEN r.c >= 0 THEN counter.base + r.c ELSE 0 END, %s
    FROM counter, json_to_recordset(%s::json)
        AS r(s bigint, k text, v bigint, d jsonb, h text, x boolean, c bigint)
    ON CONFLICT (source_id, key) DO UPDATE SET
        version = EXCLUDED.version, data = EXCLUDED.data, hash = EXCLUDED.hash, deleted = EXCLUDED.deleted,
        change_seq = CASE WHEN EXCLUDED.change_seq > 0 THEN EXCLUDED.change_seq
                          ELSE engines_record.change_seq END,
        updated_at = EXCLUDED.updated_at
    WHERE engines_record.version < EXCLUDED.version
)
SELECT base, at FROM counter
"""

# Record writes that produced no change (tombstones of absent keys): no seq needed.
_UPSERT_RECORDS = """
INSERT INTO engines_record (source_id, key, version, data, hash, deleted, change_seq, updated_at)
SELECT r.s, r.k, r.v, r.d, r.h, r.x, 0, %s
FROM json_to_recordset(%s::json) AS r(s bigint, k text, v bigint, d jsonb, h text, x boolean, c bigint)
ON CONFLICT (source_id, key) DO UPDATE SET
    version = EXCLUDED.version, data = EXCLUDED.data, hash = EXCLUDED.hash, deleted = EXCLUDED.deleted,
    updated_at = EXCLUDED.updated_at
WHERE engines_record.version < EXCLUDED.version
"""


_encode = msgspec.json.Encoder().encode


def _rows(rows: list[Any]) -> str:
    return _encode(rows).decode()


@dataclass
class _Prepared:
    """A batch split before any lock: its events, heartbeats and event rows."""

    events: list[Event]
    heartbeats: list[Event]
    rows: bytes  # the JSON of its event rows, without the enclosing brackets


def _prepare(batch: PendingBatch) -> _Prepared:
    events = [e for e in batch.events if e.type != "heartbeat"]
    heartbeats = [e for e in batch.events if e.type == "heartbeat"]
    s, g = batch.source_id, batch.origin
    rows = _encode(
        [
            {"s": s, "i": e.id, "t": e.type, "k": e.key, "v": e.version, "q": e.seq, "d": e.data, "g": g,
             "o": e.occurred_at}
            for e in events
        ]
    )  # fmt: skip
    return _Prepared(events, heartbeats, rows[1:-1])


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


@dataclass(frozen=True)
class Statement:
    sql: str
    params: Sequence[Any]
    returns_rows: bool = False


class CommitPlan:
    """The commit of a group of batches as two rounds of statements, without I/O.

    A round's statements depend only on the answers of the round before, so
    a driver may send a whole round at once (the fast path pipelines each
    round in one network round trip, COMMIT included) or one statement at a
    time (`commit_batches`, on any cursor). Use: run `first()`, run
    `second(answers)`, then `results(answers)`.
    """

    def __init__(self, batches: Sequence[PendingBatch], now: datetime) -> None:
        self.batches = batches
        self.now = now
        self.prepared = [_prepare(batch) for batch in batches]
        self.source_ids = sorted({batch.source_id for batch in batches})
        self.out = [BatchResult() for _ in batches]
        self.pending_changes: list[tuple[int, int, Event]] = []  # (batch position, source, event)
        self.rendered: list[dict[str, Any]] = []
        self.takes_seqs = False

    def first(self) -> list[Statement]:
        """Lock the stream rows; insert every event and read the keys' current records.

        The insert skips the rows of sources without a stream row (deleted
        sources), so it needs nothing from the lock's answer: both go in one round.
        """
        round_ = [Statement(_LOCK_STREAMS, [self.source_ids], returns_rows=True)]
        fragments = [ready.rows for ready in self.prepared if ready.rows]
        if fragments:
            keys = sorted(
                {(batch.source_id, e.key) for batch, ready in zip(self.batches, self.prepared, strict=True)
                 for e in ready.events}
            )  # fmt: skip
            event_rows = (b"[" + b",".join(fragments) + b"]").decode()
            key_rows = _rows([{"s": source_id, "k": key} for source_id, key in keys])
            round_.append(Statement(_INSERT_EVENTS_READ_CURRENT, [self.now, event_rows, key_rows], returns_rows=True))
        return round_

    def second(self, answers: Sequence[list[Any] | None]) -> list[Statement]:
        """Plan each batch in order against its keys' running state; the writes that follow."""
        streams = {row[0]: row for row in answers[0] or ()}
        work = {source_id: _SourceWork(current={}) for source_id in self.source_ids if source_id in streams}
        inserted: set[tuple[int, str]] = set()
        for is_event, source_id, name, version, deleted in (answers[1] or ()) if len(answers) > 1 else ():
            if is_event:
                inserted.add((source_id, name))
            elif source_id in work:
                work[source_id].current[name] = Current(version=version, deleted=deleted)

        claimed: set[tuple[int, str]] = set()
        pending_changes = self.pending_changes
        for position, (batch, ready, result) in enumerate(zip(self.batches, self.prepared, self.out, strict=True)):
            source = work.get(batch.source_id)
            if source is None:
                result.source_missing = True
                continue
            fresh = []
            for event in ready.events:
                marker = (batch.source_id, event.id)
                if marker in inserted and marker not in claimed:  # an earlier batch of the group may have sent it too
                    claimed.add(marker)
                    fresh.append(event)
            result.accepted = len(fresh) + len(ready.heartbeats)
            result.duplicates = len(ready.events) - len(fresh)
            decided = plan(fresh, source.current)
            result.stale = decided.stale
            base = len(pending_changes)
            pending_changes.extend((position, batch.source_id, event) for event in decided.changes)
            for write in decided.writes:
                source.writes[write.key] = write
                source.current[write.key] = Current(version=write.version, deleted=write.deleted)
                if write.change_index >= 0:
                    source.change_slot[write.key] = base + write.change_index
            source.seqs.extend(e.seq for e in ready.events if e.seq is not None)
            for beat in ready.heartbeats:
                source.heartbeat = True
                if beat.seq is not None:
                    source.upstream_seq = max(beat.seq, source.upstream_seq or beat.seq)
            source.pushed = source.pushed or (batch.origin == "push" and bool(batch.events))
            source.new_events += len(fresh)
            source.duplicates += result.duplicates
            source.changes += len(decided.changes)

        round_ = [_update_streams(streams, work, self.now)] if work else []
        # Rendered before the counter is locked; seq and committed_at are filled in under it.
        self.rendered = [
            _render(self.batches[position].origin, source_id, event) for position, source_id, event in pending_changes
        ]
        record_rows = [
            {"s": source_id, "k": w.key, "v": w.version, "d": w.data, "h": w.hash, "x": w.deleted,
             "c": source.change_slot.get(w.key, -1)}
            for source_id, source in work.items()
            for w in source.writes.values()
        ]  # fmt: skip
        if pending_changes:
            change_rows = [
                {"q": index, "s": source_id, "i": event.id, "t": event.type, "k": event.key, "v": event.version,
                 "d": event.data, "o": self.batches[position].origin}
                for index, (position, source_id, event) in enumerate(pending_changes)
            ]  # fmt: skip
            total = len(pending_changes)
            params = [total, total, _rows(change_rows), self.now, _rows(record_rows)]
            round_.append(Statement(_SEQS_CHANGES_RECORDS, params, returns_rows=True))
            self.takes_seqs = True
        elif record_rows:
            round_.append(Statement(_UPSERT_RECORDS, [self.now, _rows(record_rows)]))
        return round_

    def results(self, answers: Sequence[list[Any] | None]) -> list[BatchResult]:
        """One result per batch, its changes numbered from the seqs the last statement took."""
        if self.takes_seqs:
            last = answers[-1]
            assert last is not None
            base, at = last[0]
            committed_at = at.astimezone(UTC).isoformat()
            for index, ((position, _, _), change) in enumerate(zip(self.pending_changes, self.rendered, strict=True)):
                change["seq"] = base + index
                change["committed_at"] = committed_at
                self.out[position].changes.append(change)
        return self.out


def commit_batches(cursor: Cursor, batches: Sequence[PendingBatch], *, now: datetime) -> list[BatchResult]:
    """Commit several batches in the caller's transaction, a statement at a time; one result per batch.

    Steps (CommitPlan): prepare the event rows; lock the sources' stream
    rows; insert the events of every batch (duplicates fall out on the
    unique index) and read the current records of their keys; plan each
    batch's changes in order against each key's running state; fold seqs
    and counters into the stream rows; take the tenant's seqs for all
    changes at once, writing the changes and the final record states in the
    same statement.
    """
    commit = CommitPlan(batches, now)
    first = [run_statement(cursor, statement) for statement in commit.first()]
    second = [run_statement(cursor, statement) for statement in commit.second(first)]
    return commit.results(second)


def run_statement(cursor: Cursor, statement: Statement) -> list[Any] | None:
    cursor.execute(statement.sql, statement.params)
    return cursor.fetchall() if statement.returns_rows else None


def _render(origin: str, source_id: int, event: Event) -> dict[str, Any]:
    return {
        "seq": 0,  # set once the seqs are taken
        "source": source_id,
        "event_id": event.id,
        "type": event.type,
        "key": event.key,
        "version": event.version,
        "data": event.data,
        "origin": origin,
        "committed_at": "",  # set once the seqs are taken
    }


def _update_streams(streams: dict[int, Any], work: dict[int, _SourceWork], now: datetime) -> Statement:
    rows = []
    for source_id, source in work.items():
        _, contiguous, highest, pending, last_event_at, expected = streams[source_id]
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
        rows.append(
            {
                "id": source_id,
                "c": state.contiguous,
                "h": state.highest,
                "p": list(state.pending),
                "u": source.upstream_seq,
                "le": now if arrived else None,
                "lp": now if source.pushed else None,
                "lh": now if source.heartbeat else None,
                "x": expected,
                "n": source.new_events,
                "d": source.duplicates,
                "ch": source.changes,
            }
        )
    return Statement(_UPDATE_STREAMS, [now, _rows(rows)])
