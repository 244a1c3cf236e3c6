"""`manage.py migrate_tenants`: migrate public and only the tenant schemas with pending migrations.

One query tells which schemas lack a migration on disk; those are migrated
(several tenants in parallel processes), the template schema re-made when
the migration set changed, and the result checked. `make up` and
`make migrate` run it; `--all` visits every tenant like `migrate_schemas`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from tenants.schema_migrations import migrate_pending


class Command(BaseCommand):
    help = "Migrate public and the tenant schemas that have pending migrations; re-make the template schema."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--executor",
            choices=["standard", "multiprocessing"],
            help="How tenants are migrated (default: multiprocessing when several need it).",
        )
        parser.add_argument(
            "--processes",
            type=int,
            help="Parallel processes for the multiprocessing executor (default BEASTFLOW_MIGRATE_PROCESSES).",
        )
        parser.add_argument("--all", action="store_true", dest="everything", help="Migrate every tenant schema.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["processes"]:
            # Read by django-tenants when it makes its pool.
            settings.TENANT_MULTIPROCESSING_MAX_PROCESSES = options["processes"]

        def say(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        result = migrate_pending(
            say=say,
            executor=options["executor"],
            everything=options["everything"],
            verbosity=options["verbosity"],
        )
        say(f"migrations: nothing pending in public and {len(result.tenants)} tenant schemas")
