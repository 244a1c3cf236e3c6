"""`manage.py bootstrap`: everything `make up` needs before the processes start.

Idempotent: migrate public and the tenants with pending migrations, make sure the
`demo` tenant with its three simulated sources (engines.demo) and an admin
login exist, and print how to reach them. The sources' simulators run in
`manage.py simulate --demo`, which `make up` starts once the web answers.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django_tenants.utils import tenant_context

from engines import demo
from tenants import services
from tenants.models import Tenant
from tenants.schema_migrations import migrate_pending

DEMO_SLUG = demo.DEMO_SLUG
ADMIN_USERNAME = "admin"


class Command(BaseCommand):
    help = "Migrate, ensure the demo tenant and the admin login, print where to go."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-demo", action="store_true", help="Skip the demo tenant.")
        parser.add_argument(
            "--no-demo-sources", action="store_true", help="Do not create the demo tenant's simulated sources."
        )
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args: Any, **options: Any) -> None:
        # Only the schemas with pending migrations (one query tells which),
        # tenants in parallel; the template schema re-made if they changed.
        migrate_pending(say=self._progress, verbosity=options["verbosity"])
        Tenant.objects.filter(ready=False).exclude(schema_name="public").update(ready=True)
        result: dict[str, Any] = {"admin_user": ADMIN_USERNAME, "admin_password": self._admin_password()}
        if not options["no_demo"]:
            result.update(self._demo(sources=not options["no_demo_sources"]))
        port = settings.BEASTFLOW_PORT
        result["console_url"] = f"http://{DEMO_SLUG}.{settings.BEASTFLOW_BASE_DOMAIN}:{port}/"
        result["admin_url"] = f"http://localhost:{port}/admin/"
        if options["as_json"]:
            self.stdout.write(json.dumps(result))
            return
        for name, value in result.items():
            lines = value if isinstance(value, list) else [value]
            for index, line in enumerate(lines):
                self.stdout.write(f"  {name if index == 0 else '':<16} {_text(line)}")

    def _progress(self, line: str) -> None:
        # On stderr: stdout carries the result (one JSON object with --json).
        self.stderr.write(line, style_func=str)
        self.stderr.flush()

    def _admin_password(self) -> str:
        """Create the admin once; its password lives under .beastflow/ for the next `make up`."""
        path = settings.STATE_DIR / "admin_password"
        user_model = get_user_model()
        if path.exists() and user_model.objects.filter(username=ADMIN_USERNAME).exists():
            return path.read_text().strip()
        password = secrets.token_urlsafe(12)
        user, _ = user_model.objects.get_or_create(
            username=ADMIN_USERNAME, defaults={"is_staff": True, "is_superuser": True}
        )
        user.set_password(password)
        user.is_staff = user.is_superuser = True
        user.save()
        settings.STATE_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(password)
        path.chmod(0o600)
        return password

    def _demo(self, *, sources: bool) -> dict[str, Any]:
        path = settings.STATE_DIR / "demo_api_key"
        tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
        if tenant is None:
            tenant, issued = services.tenant_create(slug=DEMO_SLUG, name="Demo")
            path.write_text(issued.raw)
            path.chmod(0o600)
        elif not path.exists():
            issued = services.apikey_create(tenant=tenant, label="make up")
            path.write_text(issued.raw)
            path.chmod(0o600)
        result: dict[str, Any] = {"demo_api_key": path.read_text().strip()}
        if sources:
            with tenant_context(tenant):
                upstreams = demo.ensure_demo_sources()
            result["demo_sources"] = [
                {"id": u.source_id, "name": u.name, "upstream": f"http://127.0.0.1:{u.port}", "story": u.story}
                for u in upstreams
            ]
        return result


def _text(value: Any) -> str:
    """One line of the human output; a demo source reads `#12 demo-outage (http://127.0.0.1:9102): story`."""
    if isinstance(value, dict) and "id" in value:
        return f"#{value['id']} {value['name']} ({value['upstream']}): {value['story']}"
    return str(value)
