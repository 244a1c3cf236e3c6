"""Public-schema models: who the tenants are and how they are reached."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


class Tier(models.TextChoices):
    FREE = "free", "Free"
    STANDARD = "standard", "Standard"
    PREMIUM = "premium", "Premium"


class Tenant(TenantMixin):  # type: ignore[misc]
    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=200)
    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.STANDARD)
    # Set once the schema and all its migrations exist. Fan-out and API
    # resolution skip tenants that are not ready, so work never lands in a
    # half-migrated schema.
    ready = models.BooleanField(default=False)
    ingest_rate_per_s = models.PositiveIntegerField(
        default=20_000, help_text="Sustained ingest quota (events per second)."
    )
    ingest_burst = models.PositiveIntegerField(
        default=40_000, help_text="Events that may arrive at once above the sustained rate."
    )
    max_sources = models.PositiveIntegerField(default=500)
    # Retention (docs/scaling.md); 0 keeps forever.
    event_retention_days = models.PositiveIntegerField(
        default=30,
        help_text="Events older than this are deleted; a repeated event id is recognised while its first copy is kept.",
    )
    change_retention_days = models.PositiveIntegerField(
        default=7,
        help_text=(
            "Changes older than this are dropped, a week at a time, unless a callback subscription still needs them; "
            "a resume from before what is kept answers 410."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    auto_create_schema = True
    auto_drop_schema = True

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def create_schema(self, check_if_exists: bool = False, sync_schema: bool = True, verbosity: int = 1) -> bool:
        """The schema: a spare renamed (tenants.schema_spares), else a copy of the migrated template.

        django-tenants calls this from save() for a new tenant; callers
        ensure the template first (tenant_create does), since that may
        migrate and so cannot happen inside the creating transaction.
        """
        from django_tenants.utils import schema_exists

        from tenants import schema_spares, schema_template

        if check_if_exists and schema_exists(self.schema_name):
            return False
        if not sync_schema:
            return bool(super().create_schema(check_if_exists=check_if_exists, sync_schema=False))
        if schema_spares.spare_take(schema=self.schema_name):
            schema_spares.SCHEMAS_MADE.labels("spare").inc()
        else:
            schema_template.schema_create(schema=self.schema_name)
            schema_spares.SCHEMAS_MADE.labels("clone").inc()
        return True


class Domain(DomainMixin):  # type: ignore[misc]
    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return str(self.domain)


def hash_api_key(raw: str) -> str:
    # Keys are 256-bit random strings, so a fast hash is enough: there is
    # nothing to brute-force that a slow KDF would protect.
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKey(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    label = models.CharField(max_length=100, blank=True, default="")
    prefix = models.CharField(max_length=16, help_text="Visible start of the key, to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.label or 'unlabelled'})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class SourceRoute(models.Model):
    """Where a source lives: source ids are global so that a webhook signed
    with the source's secret, and carrying no API key, finds its tenant."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="source_routes")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"source {self.pk} -> {self.tenant_id}"


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    OPERATOR = "operator", "Operator"


class Membership(models.Model):
    """Who may open a tenant's console. Staff and superusers see every tenant without one."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.OPERATOR)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tenant", "user"]
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="one_membership_per_user_tenant")]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.role})"
