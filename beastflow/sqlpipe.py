"""Many small statements in one round trip: psycopg's pipeline mode on Django's connection.

Why not one big statement: work that spans many tenant schemas (the batched
judge) used to be one `UNION ALL` or one chain of data-modifying CTEs naming
every schema's tables. PostgreSQL plans and starts such a statement as a
whole, and with 200 schemas in it that cost 1.2 ms a schema (250 ms for a
batch's load on 1,000 tenants); the same lookups sent as 200 small statements
in a pipeline took 0.5 ms a schema, and each small statement's plan is the
same every time.

The statements run on the connection Django holds, inside whatever
transaction is open, with server-side binding (Django's own cursors bind on
the client, which pipeline mode does not support). Django's execute
wrappers (query logging, django-prometheus' counters) do not see them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from django.db import connection

Statement = tuple[str, Sequence[Any]]


def run_pipelined(statements: Sequence[Statement]) -> list[list[tuple[Any, ...]]]:
    """Each statement's rows (empty for those that return none), in order; one round trip for all.

    A failing statement raises when the pipeline is flushed and aborts the
    open transaction, as one big statement would have.
    """
    if not statements:
        return []
    connection.ensure_connection()
    raw = connection.connection
    assert raw is not None
    cursors = [psycopg.Cursor(raw) for _ in statements]
    try:
        with raw.pipeline():
            for cursor, (sql, params) in zip(cursors, statements, strict=True):
                # The SQL is built from catalog names, never from input; values travel as parameters.
                cursor.execute(sql, params)
        # `rownumber` is None without a result set (an UPDATE without RETURNING); cheaper
        # to ask than `description`, which builds a column object per column each time.
        return [cursor.fetchall() if cursor.rownumber is not None else [] for cursor in cursors]
    finally:
        for cursor in cursors:
            cursor.close()
