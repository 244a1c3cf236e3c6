"""`manage.py retention [--tenant SLUG]`: run the retention pass now (the clock runs it hourly)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from retention.services import retention_pass
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Make the partitions due ahead and remove what is past retention, for every tenant or one."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="Only this tenant (slug).")

    def handle(self, *args: Any, **options: Any) -> None:
        tenants = Tenant.objects.exclude(schema_name="public").filter(ready=True)
        if options["tenant"]:
            tenants = tenants.filter(slug=options["tenant"])
            if not tenants.exists():
                raise CommandError(f"no tenant {options['tenant']!r}")
        for tenant in tenants:
            result = retention_pass(tenant=tenant)
            self.stdout.write(
                json.dumps(
                    {
                        "tenant": tenant.slug,
                        "partitions_made": result.partitions_made,
                        "changes_partitions_dropped": result.changes.dropped if result.changes else [],
                        "changes_floor": result.changes.floor if result.changes else None,
                        "health_partitions_dropped": result.health_partitions_dropped,
                        "health_samples_deleted": result.health_samples_deleted,
                        "events_deleted": result.events_deleted,
                        "seconds": round(result.seconds, 3),
                    }
                )
            )
