"""New tenant schemas cloned from a migrated template schema (see docs/scaling.md).

Running every migration for each new tenant cost 0.6-1.5 s (Django renders
the model state of each migration). Instead, one schema, `tenant_template`,
is migrated once per migration set, and a new tenant's schema is written as a
copy of it: one round trip of DDL generated from the template's catalog.

Why not django-tenants' own `clone_schema` (TENANT_BASE_SCHEMA): it renames
unique constraints (`record_once_per_key` came out as
`engines_record_source_id_key_key`), so a later migration that drops or
alters a constraint by name would fail on cloned tenants only; and it costs
0.18 s plus a `migrate --fake` per tenant. Here every constraint and index
keeps its name, and tests/tenants/test_provisioning.py compares a clone's
catalog with the template's.

The template:
- is never a tenant (no Tenant row; `migrate_schemas` does not visit it);
- carries its migration set's fingerprint as its schema comment, written
  last, so a half-built template is never used;
- is re-made whenever the migration set on disk differs (a deploy with a new
  migration): `template_ensure()` runs before each creation and in bootstrap.

Concurrency: builders hold an exclusive advisory lock (on a connection of
their own, because `migrate_schemas` closes Django's); cloners hold the
shared one for their transaction and re-check the fingerprint under it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import psycopg
import structlog
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader

from tenants.migration_set import Node, fingerprint

log = structlog.get_logger(__name__)

TEMPLATE_SCHEMA = "tenant_template"
# Part of the fingerprint: bump it when the clone script's generator changes,
# so that templates (and their scripts) made by the old code are re-made.
CLONER_VERSION = "1"
LOCK_KEY = 0x6266_7470_6C00  # "bftpl": one advisory lock for the template
COMMENT_PREFIX = "beastflow template "
# Stands for the new schema in the generated script.
MARKER = "__beastflow_new_schema__"
_LIKE_OPTIONS = (
    "INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING GENERATED INCLUDING CONSTRAINTS INCLUDING STORAGE "
    "INCLUDING COMPRESSION INCLUDING COMMENTS INCLUDING STATISTICS"
)

# Hooks run in the creating transaction once the schema exists, each given
# the schema's name (engines adds its partitions here). A list, not a
# signal: the order is the order of registration and a failure aborts.
after_clone: list[Callable[[str], None]] = []


class TemplateError(RuntimeError):
    """The template cannot be made or used; the message says why."""


class TemplateStaleError(TemplateError):
    """The template changed between `template_ensure` and the clone: ensure again."""


@functools.cache
def migration_nodes() -> frozenset[Node]:
    """Every migration on disk (the graph, squashes applied). Cached: code does not change under a process."""
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    return frozenset(graph.nodes)


def expected_fingerprint() -> str:
    return fingerprint(migration_nodes(), salt=CLONER_VERSION)


def forget() -> None:
    """Drop the cached migration set and scripts (tests that add a migration call it)."""
    migration_nodes.cache_clear()
    _script.cache_clear()


def quote_ident(name: str) -> str:
    """A schema or table name as an SQL identifier (quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


_q = quote_ident


def template_fingerprint() -> str | None:
    """The fingerprint the template was finished with, or None (missing or half-built)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s", [TEMPLATE_SCHEMA]
        )
        row = cursor.fetchone()
    comment = row[0] if row else None
    if not comment or not comment.startswith(COMMENT_PREFIX):
        return None
    return str(comment[len(COMMENT_PREFIX) :])


def template_ensure() -> str:
    """Make sure the template matches the migrations on disk; its fingerprint.

    Steps: compare the template's fingerprint with the expected one (the
    common case ends here, one query); else take the exclusive lock, compare
    again (another process may have built it meanwhile), refuse if the
    database has migrations this code does not know (an older process during
    a deploy must not take the template back), then build.
    """
    expected = expected_fingerprint()
    if template_fingerprint() == expected:
        return expected
    with _exclusive_lock():
        if template_fingerprint() == expected:
            return expected
        _refuse_if_code_is_older()
        _build(expected)
    return expected


def _refuse_if_code_is_older() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT app, name FROM public.django_migrations")
        applied = {(str(app), str(name)) for app, name in cursor.fetchall()}
    known = migration_nodes()
    newest = {app: max(name for a, name in known if a == app) for app, _ in known}
    # Public also keeps rows of migrations removed from disk long ago
    # (squashed, then deleted): only one past this code's newest counts.
    newer = sorted(f"{app}.{name}" for app, name in applied - known if app in newest and name > newest[app])
    if newer:
        raise TemplateError(
            f"the database has migrations this code does not know ({', '.join(newer[:3])}): "
            "create tenants from a process running the newest code"
        )


def _build(expected: str) -> None:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {_q(TEMPLATE_SCHEMA)} CASCADE")
        cursor.execute(f"CREATE SCHEMA {_q(TEMPLATE_SCHEMA)}")
    # migrate_schemas commits and closes Django's connection when it is done.
    call_command(
        "migrate_schemas",
        tenant=True,
        schema_name=TEMPLATE_SCHEMA,
        interactive=False,
        verbosity=0,
        executor="standard",
    )
    connection.set_schema_to_public()  # type: ignore[attr-defined]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT app, name FROM {_q(TEMPLATE_SCHEMA)}.django_migrations")  # noqa: S608 (constant)
        missing = migration_nodes() - {(str(a), str(n)) for a, n in cursor.fetchall()}
        if missing:
            raise TemplateError(f"the template lacks migrations after migrating: {sorted(missing)[:3]}")
        _check_clonable(cursor)
        cursor.execute(f"COMMENT ON SCHEMA {_q(TEMPLATE_SCHEMA)} IS %s", [COMMENT_PREFIX + expected])
    if not connection.in_atomic_block:
        connection.commit()
    log.info("tenant_template_built", fingerprint=expected, seconds=round(time.perf_counter() - started, 3))


class _exclusive_lock:  # noqa: N801 (used as a context manager)
    """The template's exclusive advisory lock, on a connection of its own."""

    def __enter__(self) -> None:
        params = dict(connection.get_connection_params())
        params.pop("cursor_factory", None)
        params.pop("context", None)
        params.pop("pool", None)
        self.conn = psycopg.connect(**params, autocommit=True)
        self.conn.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])

    def __exit__(self, *exc: object) -> None:
        self.conn.close()  # releases the lock


# Objects the cloner copies: tables (plain, partitioned, default partitions),
# their constraints, indexes, identity sequences, and rows. Anything else in
# the template makes the build fail loudly rather than clone short.
_UNSUPPORTED = """
SELECT 'relation ' || relname || ' of kind ' || relkind::text FROM pg_class
 WHERE relnamespace = %(ns)s::regnamespace AND relkind NOT IN ('r', 'p', 'i', 'I', 'S', 't')
UNION ALL
SELECT 'sequence ' || c.relname || ' not owned by an identity column' FROM pg_class c
 WHERE c.relnamespace = %(ns)s::regnamespace AND c.relkind = 'S'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'i')
UNION ALL
SELECT 'function ' || proname FROM pg_proc WHERE pronamespace = %(ns)s::regnamespace
UNION ALL
SELECT 'trigger ' || t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = %(ns)s::regnamespace AND NOT t.tgisinternal
UNION ALL
SELECT 'type ' || typname FROM pg_type WHERE typnamespace = %(ns)s::regnamespace AND typtype IN ('e', 'd', 'r', 'm')
UNION ALL
SELECT 'policy ' || p.polname FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
 WHERE c.relnamespace = %(ns)s::regnamespace
UNION ALL
SELECT 'column default ' || c.relname || '.' || a.attname || ' uses a sequence'
  FROM pg_attrdef d JOIN pg_class c ON c.oid = d.adrelid
  JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
 WHERE c.relnamespace = %(ns)s::regnamespace AND pg_get_expr(d.adbin, d.adrelid) LIKE '%%nextval(%%'
UNION ALL
SELECT 'constraint ' || con.conname || ' on partition ' || c.relname FROM pg_constraint con
  JOIN pg_class c ON c.oid = con.conrelid
 WHERE c.relnamespace = %(ns)s::regnamespace AND c.relispartition AND con.conparentid = 0 AND con.contype <> 'n'
"""


def _check_clonable(cursor: Any) -> None:
    cursor.execute(_UNSUPPORTED, {"ns": TEMPLATE_SCHEMA})
    found = [row[0] for row in cursor.fetchall()]
    if found:
        raise TemplateError(f"the template holds what the cloner does not copy: {', '.join(found[:5])}")


_TABLES = """
SELECT c.relname, c.relkind, c.relpersistence, c.relispartition,
       pg_get_partkeydef(c.oid),
       CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END,
       (SELECT p.relname FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent WHERE i.inhrelid = c.oid),
       array_to_string(c.reloptions, ', ')
FROM pg_class c
WHERE c.relnamespace = %s::regnamespace AND c.relkind IN ('r', 'p')
ORDER BY c.relispartition, c.oid
"""

# Constraints declared on the tables themselves (not inherited by partitions);
# CHECK constraints and NOT NULL come with CREATE TABLE ... LIKE.
_CONSTRAINTS = """
SELECT c.relname, con.conname, con.contype, pg_get_constraintdef(con.oid)
FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
WHERE c.relnamespace = %s::regnamespace AND NOT c.relispartition AND con.contype IN ('p', 'u', 'x', 'f')
ORDER BY con.contype = 'f', con.oid
"""

# Indexes that no constraint owns, on tables that are not partitions (a
# partition's indexes come from its parent's when it is created).
_INDEXES = """
SELECT pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
WHERE c.relnamespace = %s::regnamespace AND NOT c.relispartition
  AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid AND con.conrelid = i.indrelid)
ORDER BY i.indexrelid
"""

_COLUMNS = """
SELECT a.attname, a.attidentity <> '' FROM pg_attribute a
WHERE a.attrelid = (%s || '.' || %s)::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attnum
"""


@functools.cache
def _script(fingerprint_: str) -> str:
    """The DDL and data that make a schema like the template, `MARKER` standing for its name.

    Steps, each in the template's own order: tables (partitioned ones with
    their partition key; `LIKE` brings columns, defaults, identity, CHECK
    constraints, storage and comments); primary keys, unique and exclusion
    constraints; the other indexes; default partitions (after the indexes,
    so that theirs are named as in the template); foreign keys; the template's
    rows (its migration records, the seq counter row) with identity sequences
    moved past them. Ranged partitions are left out: they belong to dates, and
    the `after_clone` hooks create the current ones.
    """
    tpl = _q(TEMPLATE_SCHEMA)
    new = MARKER
    tables: list[str] = []
    defaults: list[str] = []
    data: list[str] = []
    with transaction.atomic(), connection.cursor() as cursor:
        # Generated under the template's search_path alone: references to the
        # template's own tables come out unqualified, any other schema's
        # qualified. Set back at the end: inside a caller's transaction the
        # setting would outlive this block.
        cursor.execute("SELECT current_setting('search_path')")
        saved = cursor.fetchone()[0]
        cursor.execute("SELECT set_config('search_path', %s, true)", [tpl])
        cursor.execute(_TABLES, [TEMPLATE_SCHEMA])
        rows = cursor.fetchall()
        for name, kind, persistence, is_partition, partkey, bound, parent, options in rows:
            if is_partition:
                if bound == "DEFAULT":
                    defaults.append(f"CREATE TABLE {new}.{_q(name)} PARTITION OF {new}.{_q(parent)} DEFAULT")
                continue
            unlogged = "UNLOGGED " if persistence == "u" else ""
            statement = f"CREATE {unlogged}TABLE {new}.{_q(name)} (LIKE {tpl}.{_q(name)} {_LIKE_OPTIONS})"
            if kind == "p":
                statement += f" PARTITION BY {partkey}"
            elif options:
                statement += f" WITH ({options})"
            tables.append(statement)
        cursor.execute(_CONSTRAINTS, [TEMPLATE_SCHEMA])
        keys: list[str] = []
        foreign: list[str] = []
        for table, name, kind, definition in cursor.fetchall():
            statement = f"ALTER TABLE {new}.{_q(table)} ADD CONSTRAINT {_q(name)} {definition}"
            (foreign if kind == "f" else keys).append(statement)
        cursor.execute(_INDEXES, [TEMPLATE_SCHEMA])
        indexes = [_retarget_index(str(row[0]), tpl, new) for row in cursor.fetchall()]
        for name, _kind, _, is_partition, *_ in rows:
            if is_partition:
                continue
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {tpl}.{_q(name)})")  # noqa: S608 (catalog names)
            if not cursor.fetchone()[0]:
                continue
            cursor.execute(_COLUMNS, [tpl, _q(name)])
            columns = cursor.fetchall()
            listed = ", ".join(_q(column) for column, _ in columns)
            data.append(
                f"INSERT INTO {new}.{_q(name)} ({listed}) OVERRIDING SYSTEM VALUE "  # noqa: S608 (catalog names)
                f"SELECT {listed} FROM {tpl}.{_q(name)}"
            )
            for column, identity in columns:
                if identity:
                    data.append(
                        f"SELECT setval(pg_get_serial_sequence('{new}.{_q(name)}', '{column}'), "  # noqa: S608
                        f"COALESCE(max({_q(column)}), 0) + 1, false) FROM {new}.{_q(name)}"
                    )
        cursor.execute("SELECT set_config('search_path', %s, true)", [saved])
    statements = [*tables, *keys, *indexes, *defaults, f"SET LOCAL search_path TO {new}", *foreign, *data]
    return ";\n".join(statements) + ";"


def _retarget_index(definition: str, tpl: str, new: str) -> str:
    """pg_get_indexdef qualifies the table with the template's schema; ON ONLY (a
    partitioned table's index) would leave the partitions made later without it."""
    for before in (f" ON ONLY {TEMPLATE_SCHEMA}.", f" ON ONLY {tpl}.", f" ON {TEMPLATE_SCHEMA}.", f" ON {tpl}."):
        if before in definition:
            return definition.replace(before, f" ON {new}.", 1)
    raise TemplateError(f"unexpected index definition: {definition}")


def schema_create(*, schema: str) -> float:
    """Create `schema` as a copy of the template in one transaction; the seconds it took.

    Runs in the caller's transaction when there is one (tenant_create makes
    the tenant row, the schema, its domain and key one atomic step). The
    template must have been ensured first (`template_ensure`, which may run
    migrations and so cannot run inside a transaction).
    """
    if schema == TEMPLATE_SCHEMA:
        raise TemplateError("the template is never a tenant")
    expected = expected_fingerprint()
    script = _script(expected)
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [LOCK_KEY])
        if template_fingerprint() != expected:
            raise TemplateStaleError("the template changed: ensure it again")
        cursor.execute("SELECT current_setting('search_path')")
        saved = cursor.fetchone()[0]
        cursor.execute(f"CREATE SCHEMA {_q(schema)}")
        cursor.execute(script.replace(MARKER, _q(schema)))
        cursor.execute("SELECT set_config('search_path', %s, true)", [saved])
        for hook in after_clone:
            hook(schema)
    return time.perf_counter() - started
