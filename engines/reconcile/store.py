"""The local side of a reconciliation: SQL on the run's own connection.

Nothing here holds a source's records in Python. PostgreSQL aggregates the
bucket digests; the keys the snapshot showed go to a temporary table, page
by page, and the keys gone upstream are found with one anti-join against
it; the corrections wait in a second temporary table until the run decides
to apply them, and are read back in batches. Memory stays that of a page.

The temporary tables belong to the session, so the run's statements must
all go through one connection (Django's, in autocommit outside the apply
batches); a worker that dies takes them with its session.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from django.db import connection

from engines.reconcile.diff import BUCKET_DIGITS, SUB_BUCKET_DIGITS, LocalRow

# sha256(key) in hex, as docs/contract.md §6 buckets keys. convert_to, not ::bytea:
# a text-to-bytea cast reads backslashes as escapes.
_KEY_HASH = "encode(sha256(convert_to(r.key, 'UTF8')), 'hex')"

# docs/contract.md §6 bucket digests. COLLATE "C" orders by UTF-8 bytes, which is
# code point order: the order of the upstream's "sorted by key".
_BUCKETS = f"""
SELECT substr(b.h, 1, %s) AS bucket, count(*),
       encode(sha256(convert_to(string_agg(
           r.key || E'\\t' || r.version || E'\\t' || r.hash || E'\\n', '' ORDER BY r.key COLLATE "C"
       ), 'UTF8')), 'hex') AS digest
FROM engines_record r CROSS JOIN LATERAL (SELECT {_KEY_HASH} AS h) b
WHERE r.source_id = %s AND NOT r.deleted {{scope}}
GROUP BY 1
"""  # noqa: S608 (no input in it: values are parameters)


@dataclass(frozen=True, slots=True)
class BucketState:
    digest: str
    count: int


@dataclass(frozen=True, slots=True)
class Correction:
    type: str  # upsert | delete
    key: str
    version: int
    data: dict[str, Any] | None


def raw_cursor() -> Any:
    """psycopg's own cursor under Django's connection: no query log in DEBUG
    (each statement carries a page of keys), and arrays as psycopg has them.

    A Django cursor is opened first: that is where django-tenants sets the
    session's search_path to the current tenant, which the raw cursor then uses.
    """
    with connection.cursor():
        pass
    return connection.connection.cursor()


def local_buckets(cursor: Any, source_id: int, *, parents: Sequence[str] | None = None) -> dict[str, BucketState]:
    """Digest and count of every non-empty local bucket; of the sub-buckets of `parents` when given."""
    if parents is None:
        cursor.execute(_BUCKETS.format(scope=""), [BUCKET_DIGITS, source_id])
    else:
        scope = f"AND substr(b.h, 1, {BUCKET_DIGITS}) = ANY(%s)"
        cursor.execute(_BUCKETS.format(scope=scope), [SUB_BUCKET_DIGITS, source_id, list(parents)])
    return {bucket: BucketState(digest=digest, count=count) for bucket, count, digest in cursor.fetchall()}


def live_count(cursor: Any, source_id: int) -> int:
    cursor.execute("SELECT count(*) FROM engines_record WHERE source_id = %s AND NOT deleted", [source_id])
    return int(cursor.fetchone()[0])


def last_seq(cursor: Any) -> int:
    """The tenant's last committed change seq: records changed after it changed during the run."""
    cursor.execute("SELECT COALESCE((SELECT last FROM engines_seqcounter WHERE id = 1), 0)")
    return int(cursor.fetchone()[0])


class Workspace:
    """The run's temporary tables: keys seen upstream, corrections found, upstream sub-bucket digests."""

    def __init__(self, cursor: Any, run_id: int) -> None:
        self.cursor = cursor
        # The run id keeps two runs of one session apart (it is an int: safe in SQL).
        self.seen = f"reconcile_seen_{int(run_id)}"
        self.diff = f"reconcile_diff_{int(run_id)}"
        self.subs = f"reconcile_subs_{int(run_id)}"

    def __enter__(self) -> Workspace:
        self._drop()
        self.cursor.execute(f"CREATE TEMPORARY TABLE {self.seen} (key text NOT NULL)")
        self.cursor.execute(
            f"CREATE TEMPORARY TABLE {self.diff} (type text NOT NULL, key text NOT NULL,"
            " version bigint NOT NULL, data text)"
        )
        self.cursor.execute(f"CREATE TEMPORARY TABLE {self.subs} (bucket text PRIMARY KEY, digest text NOT NULL)")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if connection.connection is None or connection.connection.closed:
            return  # the session, and its temporary tables, are gone already
        if exc_type is None:
            self._drop()
            return
        # Leaving on an error: the original error matters, not a failed drop
        # (in an aborted transaction); the tables go with the session anyway.
        with contextlib.suppress(Exception):
            self._drop()

    def _drop(self) -> None:
        self.cursor.execute(f"DROP TABLE IF EXISTS {self.seen}, {self.diff}, {self.subs}")

    def add_sub_digests(self, digests: dict[str, str]) -> None:
        """Keep an upstream bucket's 256 sub-bucket digests for `differing_sub_buckets`."""
        self.cursor.execute(
            f"INSERT INTO {self.subs} (bucket, digest) SELECT * FROM unnest(%s::text[], %s::text[])",  # noqa: S608
            [list(digests), list(digests.values())],
        )

    def differing_sub_buckets(self, source_id: int, *, empty_digest: str) -> tuple[list[str], int]:
        """The sub-buckets whose local digest differs from the upstream's kept ones, and
        the local records in those that are equal.

        In SQL, so that memory follows the drift (the differing names), not
        the 256 x 256 digests of a large source.
        """
        self.cursor.execute(
            f"""
            WITH local AS ({_BUCKETS.format(scope=f"AND substr(b.h, 1, {BUCKET_DIGITS}) = ANY(%s)")})
            SELECT u.bucket, l.count, COALESCE(l.digest, %s) = u.digest
            FROM {self.subs} u LEFT JOIN local l ON l.bucket = u.bucket
            """,  # noqa: S608 (table names are ours)
            [SUB_BUCKET_DIGITS, source_id, self._parents(), empty_digest],
        )
        differing: list[str] = []
        unchanged = 0
        for bucket, count, equal in self.cursor:
            if equal:
                unchanged += count or 0
            else:
                differing.append(bucket)
        return sorted(differing), unchanged

    def _parents(self) -> list[str]:
        self.cursor.execute(f"SELECT DISTINCT substr(bucket, 1, {BUCKET_DIGITS}) FROM {self.subs}")  # noqa: S608
        return [row[0] for row in self.cursor.fetchall()]

    def lookup(self, source_id: int, keys: list[str]) -> dict[str, LocalRow]:
        """The local rows of a page's keys; the keys are marked seen in the same statement."""
        self.cursor.execute(
            f"WITH marked AS (INSERT INTO {self.seen} (key) SELECT unnest(%s::text[]))"  # noqa: S608
            " SELECT key, version, hash, deleted FROM engines_record WHERE source_id = %s AND key = ANY(%s)",
            [keys, source_id, keys],
        )
        return {key: LocalRow(version, hash_, deleted) for key, version, hash_, deleted in self.cursor.fetchall()}

    def add_upserts(self, rows: list[tuple[str, int, dict[str, Any]]]) -> None:
        if not rows:
            return
        self.cursor.execute(
            f"INSERT INTO {self.diff} (type, key, version, data)"  # noqa: S608
            " SELECT 'upsert', u.key, u.version, u.data FROM unnest(%s::text[], %s::bigint[], %s::text[])"
            " AS u(key, version, data)",
            [
                [key for key, _, _ in rows],
                [version for _, version, _ in rows],
                # Text, not jsonb: json.loads gives back exactly what was decoded.
                [json.dumps(data, ensure_ascii=False, separators=(",", ":")) for _, _, data in rows],
            ],
        )

    def add_deletes(
        self, source_id: int, *, start_seq: int, buckets: Sequence[str] | None
    ) -> tuple[int, int, list[str]]:
        """Live local records the snapshot did not show become deletes.

        Only those last changed before the run began (change_seq <= start_seq):
        one changed since is a push the snapshot may have been too early to
        see, so it is counted in flight and left alone. `buckets` limits the
        search to the buckets (2 digits) and sub-buckets (4) that were fetched;
        None is the whole source. Returns (deletes, in flight, sample keys).
        """
        scope, params = "", []
        if buckets is not None:
            whole = [b for b in buckets if len(b) == BUCKET_DIGITS]
            subs = [b for b in buckets if len(b) == SUB_BUCKET_DIGITS]
            scope = f" AND (substr(b.h, 1, {BUCKET_DIGITS}) = ANY(%s) OR substr(b.h, 1, {SUB_BUCKET_DIGITS}) = ANY(%s))"
            params = [whole, subs]
        self.cursor.execute(f"ANALYZE {self.seen}")  # the planner then hashes the seen keys for the anti-join
        self.cursor.execute(
            f"""
            WITH gone AS (
                SELECT r.key, r.version, r.change_seq
                FROM engines_record r CROSS JOIN LATERAL (SELECT {_KEY_HASH} AS h) b
                WHERE r.source_id = %s AND NOT r.deleted {scope}
                  AND NOT EXISTS (SELECT 1 FROM {self.seen} s WHERE s.key = r.key)
            ), added AS (
                INSERT INTO {self.diff} (type, key, version, data)
                SELECT 'delete', key, version + 1, NULL FROM gone WHERE change_seq <= %s
                RETURNING key
            )
            SELECT (SELECT count(*) FROM added), (SELECT count(*) FROM gone WHERE change_seq > %s),
                   (SELECT array_agg(key) FROM (SELECT key FROM added ORDER BY key LIMIT 20) k)
            """,  # noqa: S608 (table names are ours)
            [source_id, *params, start_seq, start_seq],
        )
        deletes, in_flight, sample = self.cursor.fetchone()
        return int(deletes), int(in_flight), list(sample or [])

    def corrections(self, batch: int) -> Iterator[list[Correction]]:
        """The corrections in key order, `batch` at a time; the newest version of a key listed twice."""
        self.cursor.execute(f"CREATE INDEX ON {self.diff} (key, version DESC)")
        after: str | None = None
        while True:
            self.cursor.execute(
                f"SELECT DISTINCT ON (key) type, key, version, data FROM {self.diff}"  # noqa: S608
                " WHERE %s::text IS NULL OR key > %s ORDER BY key, version DESC LIMIT %s",
                [after, after, batch],
            )
            rows = self.cursor.fetchall()
            if not rows:
                return
            yield [
                Correction(type_, key, version, None if data is None else json.loads(data))
                for type_, key, version, data in rows
            ]
            after = rows[-1][1]
