"""`manage.py tenant create|apikey|list|revoke` (docs/contract.md §1)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants import services
from tenants.models import ApiKey, Tenant


class Command(BaseCommand):
    help = "Provision tenants and their API keys."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a tenant with its schema, domain and a first key.")
        create.add_argument("slug")
        create.add_argument("--name")
        create.add_argument("--domain", help="Console host (default <slug>.<BEASTFLOW_BASE_DOMAIN>).")
        create.add_argument("--json", action="store_true", dest="as_json")
        apikey = sub.add_parser("apikey", help="Issue another API key; existing keys stay valid.")
        apikey.add_argument("slug")
        apikey.add_argument("--label", default="")
        apikey.add_argument("--json", action="store_true", dest="as_json")
        revoke = sub.add_parser("revoke", help="Revoke a key by its visible prefix.")
        revoke.add_argument("slug")
        revoke.add_argument("prefix")
        revoke.add_argument("--json", action="store_true", dest="as_json")
        delete = sub.add_parser("delete", help="Delete a tenant and drop its schema with all its data.")
        delete.add_argument("slug")
        delete.add_argument("--yes", action="store_true", help="Confirm: this cannot be undone.")
        delete.add_argument("--json", action="store_true", dest="as_json")
        listing = sub.add_parser("list", help="List tenants.")
        listing.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            result = getattr(self, f"_{action}")(options)
        except services.TenantError as exc:
            raise CommandError(str(exc)) from exc
        if options["as_json"]:
            self.stdout.write(json.dumps(result))
        else:
            for name, value in result.items():
                self.stdout.write(f"{name}: {value}")

    def _tenant(self, slug: str) -> Tenant:
        tenant: Tenant | None = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"no tenant {slug!r}")
        return tenant

    def _create(self, options: dict[str, Any]) -> dict[str, Any]:
        tenant, issued = services.tenant_create(slug=options["slug"], name=options["name"], domain=options["domain"])
        domain = tenant.get_primary_domain()
        return {
            "slug": tenant.slug,
            "schema": tenant.schema_name,
            "domain": domain.domain if domain else None,
            "api_key": issued.raw,
        }

    def _apikey(self, options: dict[str, Any]) -> dict[str, Any]:
        issued = services.apikey_create(tenant=self._tenant(options["slug"]), label=options["label"])
        return {"slug": options["slug"], "api_key": issued.raw, "prefix": issued.key.prefix}

    def _revoke(self, options: dict[str, Any]) -> dict[str, Any]:
        tenant = self._tenant(options["slug"])
        keys = list(ApiKey.objects.filter(tenant=tenant, prefix=options["prefix"], revoked_at__isnull=True))
        if not keys:
            raise CommandError(f"no active key with prefix {options['prefix']!r} for {tenant.slug!r}")
        for key in keys:
            services.apikey_revoke(key=key)
        return {"slug": tenant.slug, "revoked": len(keys)}

    def _delete(self, options: dict[str, Any]) -> dict[str, Any]:
        tenant = self._tenant(options["slug"])
        if not options["yes"]:
            raise CommandError("deleting a tenant drops all its data: repeat with --yes")
        services.tenant_delete(tenant=tenant)
        return {"slug": options["slug"], "deleted": True}

    def _list(self, options: dict[str, Any]) -> dict[str, Any]:
        tenants = Tenant.objects.exclude(schema_name="public")
        return {"tenants": [{"slug": t.slug, "schema": t.schema_name, "ready": t.ready} for t in tenants]}
