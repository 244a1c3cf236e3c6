"""Writes on tenants and their keys."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_exists
from prometheus_client import Histogram

from tenants import schema_template
from tenants.models import ApiKey, Domain, Tenant, hash_api_key
from tenants.selectors import forget_cached_keys

log = structlog.get_logger(__name__)

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
RESERVED_SLUGS = frozenset({"public", "www", "admin", "api", "static", "metrics", "pg", "information"})
KEY_PREFIX = "bf_"


TENANT_CREATE_SECONDS = Histogram(
    "beastflow_tenant_create_seconds",
    "Time to create a tenant: schema (cloned from the template), domain and first key.",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5, 15),
)


class TenantError(ValueError):
    """A request about tenants that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    raw: str  # shown once, never stored


def schema_name_for(slug: str) -> str:
    return "t_" + slug.replace("-", "_")


def validate_slug(slug: str) -> None:
    if not SLUG_RE.match(slug):
        raise TenantError(f"bad slug {slug!r}: use 2-40 lowercase letters, digits and dashes, starting with a letter")
    if slug in RESERVED_SLUGS or slug.startswith("pg"):
        raise TenantError(f"bad slug {slug!r}: reserved")


def tenant_create(*, slug: str, name: str | None = None, domain: str | None = None) -> tuple[Tenant, IssuedKey]:
    """Create a tenant: its schema, its console domain and a first key, all or nothing.

    Steps: validate the slug; refuse taken slugs and domains; make sure the
    template schema matches the migrations on disk (rebuilt only after a
    deploy that added one); then one transaction saves the tenant, writes
    its schema as a copy of the template (Tenant.create_schema), adds the
    domain and a key and marks the tenant ready, so nothing routes work to it
    early and a failure leaves nothing behind.
    """
    validate_slug(slug)
    if Tenant.objects.filter(slug=slug).exists():
        raise TenantError(f"slug {slug!r} is taken")
    host = domain or f"{slug}.{settings.BEASTFLOW_BASE_DOMAIN}"
    if Domain.objects.filter(domain=host).exists():
        raise TenantError(f"domain {host!r} is taken")
    schema = schema_name_for(slug)
    if schema_exists(schema):
        raise TenantError(f"schema {schema!r} exists without a tenant: drop it or choose another slug")
    started = time.perf_counter()
    for attempt in (1, 2):
        try:
            schema_template.template_ensure()
            with transaction.atomic():
                tenant = Tenant(slug=slug, name=name or slug, schema_name=schema, ready=True)
                tenant.save(verbosity=0)  # the schema, a spare renamed or a clone, in this transaction
                Domain.objects.create(domain=host, tenant=tenant, is_primary=True)
                issued = apikey_create(tenant=tenant, label="initial")
                # The spare it may have taken is made again by a worker, off this request.
                transaction.on_commit(_spares_refill)
            break
        except schema_template.TemplateStaleError:
            if attempt == 2:
                raise TenantError("the template schema kept changing during the creation: try again") from None
        except schema_template.TemplateError as exc:
            raise TenantError(str(exc)) from exc
    seconds = time.perf_counter() - started
    TENANT_CREATE_SECONDS.observe(seconds)
    log.info("tenant_created", tenant=slug, schema=tenant.schema_name, domain=host, seconds=round(seconds, 3))
    return tenant, issued


def _spares_refill() -> None:
    from tenants.tasks import spares_fill_task

    if settings.BEASTFLOW_TENANT_SPARES > 0:
        try:
            spares_fill_task.apply_async()
        except Exception:  # the broker is down: the clock's next fill makes it up
            log.warning("tenant_spares_refill_not_sent", exc_info=True)


def tenant_delete(*, tenant: Tenant) -> None:
    """Drop the tenant's schema and every public row that points at it."""
    slug = tenant.slug
    Tenant.objects.filter(pk=tenant.pk).update(ready=False)  # stop routing work to it first
    forget_cached_keys()
    tenant.delete(force_drop=True)
    forget_cached_keys()
    log.info("tenant_deleted", tenant=slug)


def apikey_create(*, tenant: Tenant, label: str = "") -> IssuedKey:
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(tenant=tenant, label=label, prefix=raw[:11], key_hash=hash_api_key(raw))
    log.info("apikey_created", tenant=tenant.slug, prefix=key.prefix, label=label)
    return IssuedKey(key=key, raw=raw)


def apikey_revoke(*, key: ApiKey) -> None:
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    forget_cached_keys()
    log.info("apikey_revoked", tenant=key.tenant.slug, prefix=key.prefix)
