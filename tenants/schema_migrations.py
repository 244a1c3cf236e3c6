"""Migrating many schemas: find the ones with work in one query, migrate only those, in parallel.

`migrate_schemas` on its own visits every schema and spends about 0.2 s on
each to learn that nothing is pending (101 s at 501 tenants). Here the
`django_migrations` tables of every schema are read in one query and
compared with the graph on disk (tenants.migration_set); only the schemas
that lack something are migrated, the tenants among them by django-tenants'
multiprocessing executor when there are several. The template schema is not
migrated in place: tenants.schema_template re-makes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django_tenants.management.commands.migrate_schemas import MigrateSchemasCommand
from django_tenants.migration_executors import get_executor
from django_tenants.signals import schema_migrated, schema_pre_migration

from tenants import schema_template
from tenants.migration_set import Node, SchemaState, schema_states
from tenants.models import Tenant

log = structlog.get_logger(__name__)

PUBLIC = "public"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def applied_by_schema(schemas: list[str]) -> dict[str, set[Node]]:
    """The django_migrations rows of every schema that has the table, in two queries whatever their number."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = 'django_migrations' AND c.relkind = 'r' AND n.nspname = ANY(%s)",
            [schemas],
        )
        with_table = [row[0] for row in cursor.fetchall()]
        applied: dict[str, set[Node]] = {schema: set() for schema in with_table}
        if not with_table:
            return applied
        union = " UNION ALL ".join(
            f"SELECT {index}, app, name FROM {_q(schema)}.django_migrations"  # noqa: S608 (catalog names)
            for index, schema in enumerate(with_table)
        )
        cursor.execute(union)
        for index, app, name in cursor.fetchall():
            applied[with_table[index]].add((str(app), str(name)))
    return applied


@dataclass(frozen=True)
class Survey:
    public: SchemaState
    tenants: list[SchemaState]
    seconds: float

    @property
    def pending_tenants(self) -> list[str]:
        return [state.schema for state in self.tenants if state.pending]


def public_state() -> SchemaState:
    """What public lacks (on a fresh database: everything, and there is no tenant table to read yet)."""
    (state,) = schema_states(schema_template.migration_nodes(), applied_by_schema([PUBLIC]), [PUBLIC])
    return state


def survey() -> Survey:
    """Which of public and the tenant schemas lack migrations on disk (public must have its tables)."""
    started = time.perf_counter()
    tenants = list(Tenant.objects.exclude(schema_name=PUBLIC).order_by("pk").values_list("schema_name", flat=True))
    expected = schema_template.migration_nodes()
    applied = applied_by_schema([PUBLIC, *tenants])
    public, *rest = schema_states(expected, applied, [PUBLIC, *tenants])
    return Survey(public=public, tenants=rest, seconds=time.perf_counter() - started)


def migrate_pending(
    *, say: Callable[[str], None], executor: str | None = None, everything: bool = False, verbosity: int = 1
) -> Survey:
    """Migrate public and the tenants that need it (all of them with `everything`); re-make the template.

    Steps: migrate public when it lacks something (a fresh database has no
    tenant table before that); survey the tenants (one query); migrate the
    ones that lack something, in parallel processes when there are several
    (`executor`, default multiprocessing); ensure the template; survey again
    and fail if anything is still pending. Progress goes to `say`, one line
    at a time.
    """
    if everything or public_state().pending:
        started = time.perf_counter()
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=max(0, verbosity - 1))
        say(f"migrations: public migrated in {time.perf_counter() - started:.1f} s")
    else:
        say("migrations: public is up to date")
    before = survey()
    targets = [state.schema for state in before.tenants] if everything else before.pending_tenants
    say(
        f"migrations: checked {len(before.tenants)} tenant schemas in {before.seconds:.2f} s, "
        f"{len(before.pending_tenants)} have pending migrations"
    )
    if targets:
        started = time.perf_counter()
        chosen = executor or ("multiprocessing" if len(targets) > 1 else "standard")
        say(f"migrations: migrating {len(targets)} tenant schemas ({chosen} executor)")
        _migrate_tenants(targets, executor=chosen, verbosity=verbosity, say=say)
        say(f"migrations: {len(targets)} tenant schemas migrated in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    fresh = schema_template.template_fingerprint() == schema_template.expected_fingerprint()
    try:
        schema_template.template_ensure()
    except schema_template.TemplateError as exc:
        # Serving goes on (existing tenants are migrated); only creating tenants waits for a fix.
        say(f"migrations: WARNING template schema not re-made, tenants cannot be created: {exc}")
        log.warning("tenant_template_not_made", error=str(exc))
    else:
        if not fresh:
            say(f"migrations: template schema re-made in {time.perf_counter() - started:.1f} s")
    after = survey()
    if after.public.pending or after.pending_tenants:
        raise RuntimeError(
            f"still pending after migrating: {['public'] * after.public.pending + after.pending_tenants}"
        )
    return after


def _migrate_tenants(schemas: list[str], *, executor: str, verbosity: int, say: Callable[[str], None]) -> None:
    """django-tenants' executor over the given schemas only (migrate_schemas visits all or one).

    Django's own lines per schema (verbosity 2 and up) interleave across
    processes; at the default verbosity each schema gives one line when done,
    written whole by the process that migrated it.
    """
    started: dict[str, float] = {}

    def before(sender: object, schema_name: str, **_: object) -> None:
        started[schema_name] = time.perf_counter()

    def after(sender: object, schema_name: str, **_: object) -> None:
        seconds = time.perf_counter() - started.pop(schema_name, time.perf_counter())
        say(f"migrations: {schema_name} migrated in {seconds:.1f} s")

    schema_pre_migration.connect(before, weak=False)
    schema_migrated.connect(after, weak=False)
    # The options `manage.py migrate_schemas --tenant` would pass, from its own parser.
    parser = MigrateSchemasCommand().create_parser("manage.py", "migrate_schemas")
    options = vars(parser.parse_args(["--tenant", "--noinput", f"--executor={executor}"]))
    options.update(verbosity=max(0, verbosity - 1), skip_checks=True)
    processes = getattr(settings, "TENANT_MULTIPROCESSING_MAX_PROCESSES", 2)
    log.info("migrate_tenants", schemas=len(schemas), executor=executor, processes=processes)
    try:
        get_executor(codename=executor)((), options).run_migrations(tenants=list(schemas))
    finally:
        schema_pre_migration.disconnect(before)
        schema_migrated.disconnect(after)
    connection.close()  # the executor closed or forked it: start clean
    connection.set_schema_to_public()  # type: ignore[attr-defined]
