"""Provisioning at scale: tenants cloned from the template schema, and migrations only where pending.

These tests commit (the template is built and cloned outside any test
transaction) and clean up what they create.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import override_settings

from tenants import schema_template, services
from tenants.models import Domain, Tenant
from tenants.schema_migrations import survey
from tests.conftest import subprocess_env

ROOT = Path(__file__).resolve().parents[2]
PROBE_APP = "console"
PROBE_MIGRATION = "0999_template_probe"
PROBE_TABLE = "console_template_probe"
PROBE_PACKAGE = "bf_probe_console_migrations"

# The catalog of a schema as comparable rows: tables (ranged partitions left
# out: they belong to dates), columns in order, constraints and indexes with
# their names and definitions (the schema's name taken out of them).
CATALOG = """
WITH rels AS (
    SELECT c.oid, c.relname, c.relkind, c.relispartition,
           COALESCE(pg_get_expr(c.relpartbound, c.oid), '') AS bound
    FROM pg_class c WHERE c.relnamespace = %(ns)s::regnamespace AND c.relkind IN ('r', 'p')
), kept AS (
    SELECT * FROM rels WHERE NOT relispartition OR bound = 'DEFAULT'
)
SELECT 'table', relname, relkind::text, COALESCE(pg_get_partkeydef(oid), '') || bound FROM kept
UNION ALL
SELECT 'column', k.relname || '.' || a.attname,
       (row_number() OVER (PARTITION BY k.oid ORDER BY a.attnum))::text,
       format_type(a.atttypid, a.atttypmod) || ' notnull=' || a.attnotnull::text || ' identity=' || a.attidentity::text
       || ' generated=' || a.attgenerated::text || ' default=' || COALESCE(pg_get_expr(d.adbin, d.adrelid), '')
FROM kept k JOIN pg_attribute a ON a.attrelid = k.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = k.oid AND d.adnum = a.attnum
UNION ALL
SELECT 'constraint', k.relname || '.' || con.conname, con.contype::text,
       replace(pg_get_constraintdef(con.oid), %(ns)s || '.', '')
FROM kept k JOIN pg_constraint con ON con.conrelid = k.oid
UNION ALL
SELECT 'index', k.relname || '.' || i.relname, '', regexp_replace(pg_get_indexdef(i.oid), ' ON (ONLY )?\\S+\\.', ' ON ')
FROM kept k JOIN pg_index x ON x.indrelid = k.oid JOIN pg_class i ON i.oid = x.indexrelid
"""


def catalog(schema: str) -> set[tuple[str, str, str, str]]:
    with connection.cursor() as cursor:
        cursor.execute("SET search_path TO public")  # qualified names in every definition
        cursor.execute(CATALOG, {"ns": schema})
        return {tuple(row) for row in cursor.fetchall()}  # type: ignore[misc]


def migration_rows(schema: str) -> set[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT app, name FROM "{schema}".django_migrations')  # noqa: S608 (test schema)
        return {(str(app), str(name)) for app, name in cursor.fetchall()}


@pytest.fixture
def committed(personas: object, django_db_blocker: pytest.FixtureRequest) -> Iterator[None]:
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        yield


@pytest.fixture
def new_tenant(committed: None) -> Iterator[list[str]]:
    """Slugs to delete after the test, whatever happened."""
    made: list[str] = []
    yield made
    for slug in made:
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is not None:
            services.tenant_delete(tenant=tenant)


def test_a_new_tenant_is_a_copy_of_the_template_with_every_migration(
    new_tenant: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    schema_template.template_ensure()
    new_tenant.append("clonecheck")
    # when
    started = time.perf_counter()
    tenant, issued = services.tenant_create(slug="clonecheck")
    seconds = time.perf_counter() - started
    # then
    with capsys.disabled():
        print(f"\n  tenant created from the template in {seconds * 1000:.0f} ms (target <= 300 ms)")
    assert tenant.ready and issued.raw
    template = catalog(schema_template.TEMPLATE_SCHEMA)
    clone = catalog(tenant.schema_name)
    assert clone == template
    tables = {name for kind, name, *_ in template if kind == "table"}
    assert {"engines_source", "engines_event", "engines_change", "engines_record", "django_migrations"} <= tables
    assert migration_rows(tenant.schema_name) == schema_template.migration_nodes()
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT id, last FROM "{tenant.schema_name}".engines_seqcounter')  # noqa: S608
        assert cursor.fetchall() == [(1, 0)]
        # the migration records' identity sequence moved past the copied rows
        cursor.execute(
            f'INSERT INTO "{tenant.schema_name}".django_migrations (app, name, applied) '  # noqa: S608
            "VALUES ('probe', 'probe', now()) RETURNING id"
        )
        assert cursor.fetchone()[0] > len(schema_template.migration_nodes())


def test_the_template_is_never_a_tenant(committed: None) -> None:
    schema_template.template_ensure()
    assert not Tenant.objects.filter(schema_name=schema_template.TEMPLATE_SCHEMA).exists()
    assert schema_template.template_fingerprint() == schema_template.expected_fingerprint()
    with pytest.raises(schema_template.TemplateError):
        schema_template.schema_create(schema=schema_template.TEMPLATE_SCHEMA)


@contextlib.contextmanager
def after_clone_failing() -> Iterator[None]:
    """The last step of a creating transaction (an `after_clone` hook) raises RuntimeError("boom")."""

    def broken(schema: str) -> None:
        raise RuntimeError("boom")

    schema_template.after_clone.append(broken)
    try:
        yield
    finally:
        schema_template.after_clone.remove(broken)


def test_a_failed_creation_leaves_nothing_behind(new_tenant: list[str]) -> None:
    # given: the last step of the creating transaction fails
    new_tenant.append("halfmade")
    # when
    with after_clone_failing(), pytest.raises(RuntimeError, match="boom"):
        services.tenant_create(slug="halfmade")
    # then
    assert not Tenant.objects.filter(slug="halfmade").exists()
    assert not Domain.objects.filter(domain__startswith="halfmade.").exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 't_halfmade'")
        assert cursor.fetchone()[0] == 0


def _remove_probe_migration() -> None:
    """Undo the probe migration everywhere it may be (also after an interrupted run)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = 'django_migrations'"
        )
        for (schema,) in cursor.fetchall():
            cursor.execute(
                f'DELETE FROM "{schema}".django_migrations WHERE app = %s AND name = %s',  # noqa: S608
                [PROBE_APP, PROBE_MIGRATION],
            )
            cursor.execute(f'DROP TABLE IF EXISTS "{schema}".{PROBE_TABLE}')


@pytest.fixture
def probe_migrations(committed: None, tmp_path: Path) -> Iterator[Path]:
    """A copy of console's migrations plus one more (a table), importable as PROBE_PACKAGE from the path yielded.

    Afterwards the probe is removed from every schema and the template is
    re-made for the migrations on disk.
    """
    _remove_probe_migration()
    package = tmp_path / PROBE_PACKAGE
    package.mkdir()
    originals = sorted((ROOT / PROBE_APP / "migrations").glob("[0-9]*.py"))
    for path in [*originals, ROOT / PROBE_APP / "migrations" / "__init__.py"]:
        shutil.copy(path, package / path.name)
    (package / f"{PROBE_MIGRATION}.py").write_text(
        textwrap.dedent(f"""
        from django.db import migrations


        class Migration(migrations.Migration):
            dependencies = [("{PROBE_APP}", "{originals[-1].stem}")]
            operations = [
                migrations.RunSQL(
                    "CREATE TABLE {PROBE_TABLE} (id integer PRIMARY KEY)", "DROP TABLE {PROBE_TABLE}"
                )
            ]
        """)
    )
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith(PROBE_PACKAGE)]:
            del sys.modules[name]
        _remove_probe_migration()
        schema_template.forget()
        schema_template.template_ensure()
        assert schema_template.template_fingerprint() == schema_template.expected_fingerprint()


def test_the_template_is_remade_when_a_migration_is_added(probe_migrations: Path, new_tenant: list[str]) -> None:
    # given
    before = schema_template.template_ensure()
    new_tenant.append("afterdeploy")
    with override_settings(MIGRATION_MODULES={PROBE_APP: PROBE_PACKAGE}):
        schema_template.forget()
        # when: a deploy brings a new migration, and a tenant is created
        tenant, _ = services.tenant_create(slug="afterdeploy")
        # then
        assert schema_template.template_fingerprint() == schema_template.expected_fingerprint() != before
        assert (PROBE_APP, PROBE_MIGRATION) in migration_rows(schema_template.TEMPLATE_SCHEMA)
        assert (PROBE_APP, PROBE_MIGRATION) in migration_rows(tenant.schema_name)
        assert catalog(tenant.schema_name) == catalog(schema_template.TEMPLATE_SCHEMA)
        assert any(name == PROBE_TABLE for kind, name, *_ in catalog(tenant.schema_name) if kind == "table")


def _migrate_tenants(*, extra_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`manage.py migrate_tenants` in a child process; with `extra_path`, the probe migration is on disk."""
    env = subprocess_env()
    if extra_path is None:
        argv = [sys.executable, "manage.py", "migrate_tenants"]
    else:
        env["PYTHONPATH"] = f"{extra_path}:{ROOT}"
        script = (
            "import django; django.setup()\n"
            "from django.core.management import call_command\n"
            "from django.test.utils import override_settings\n"
            f"with override_settings(MIGRATION_MODULES={{'{PROBE_APP}': '{PROBE_PACKAGE}'}}):\n"
            "    call_command('migrate_tenants', '--processes', '2')\n"
        )
        argv = [sys.executable, "-c", script]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_migrate_tenants_skips_every_schema_when_nothing_is_pending(committed: None) -> None:
    # given
    assert not survey().pending_tenants
    # when
    started = time.perf_counter()
    result = _migrate_tenants()
    seconds = time.perf_counter() - started
    # then
    assert result.returncode == 0, result.stderr
    tenants = Tenant.objects.exclude(schema_name="public").count()
    assert "migrations: public is up to date" in result.stdout
    assert f"checked {tenants} tenant schemas in " in result.stdout
    assert ", 0 have pending migrations" in result.stdout
    assert " migrated in " not in result.stdout
    print(f"migrate_tenants with nothing pending, {tenants} tenants: {seconds:.2f} s (process start included)")


def test_migrate_tenants_migrates_the_pending_tenants_in_parallel_and_remakes_the_template(
    probe_migrations: Path,
) -> None:
    # given: a new migration on disk, pending in every tenant schema
    tenants = list(Tenant.objects.exclude(schema_name="public").values_list("schema_name", flat=True))
    assert len(tenants) >= 2
    # when
    result = _migrate_tenants(extra_path=probe_migrations)
    # then
    assert result.returncode == 0, result.stdout + result.stderr
    assert "migrations: public migrated in " in result.stdout  # it records every app's migrations
    assert f"checked {len(tenants)} tenant schemas in " in result.stdout
    assert f", {len(tenants)} have pending migrations" in result.stdout
    assert f"migrating {len(tenants)} tenant schemas (multiprocessing executor)" in result.stdout
    for schema in tenants:
        assert f"migrations: {schema} migrated in " in result.stdout
        assert (PROBE_APP, PROBE_MIGRATION) in migration_rows(schema)
    assert "template schema re-made" in result.stdout
    assert (PROBE_APP, PROBE_MIGRATION) in migration_rows(schema_template.TEMPLATE_SCHEMA)
    assert f"nothing pending in public and {len(tenants)} tenant schemas" in result.stdout
