from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from beastflow.tenancy import PUBLIC, current_schema
from tenants import services
from tenants.models import ApiKey, Domain, Membership, SourceRoute, Tenant


class PublicOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Platform models: managed from the public host only."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return current_schema() == PUBLIC and super().has_module_permission(request)


class DomainInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Domain
    extra = 0


@admin.register(Tenant)
class TenantAdmin(PublicOnlyAdmin):
    list_display = ("slug", "name", "tier", "ready", "schema_name", "ingest_rate_per_s", "created_at")
    list_filter = ("tier", "ready")
    search_fields = ("slug", "name")
    readonly_fields = ("schema_name", "ready", "created_at", "updated_at")
    inlines = [DomainInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Creating a tenant migrates a schema: done by `manage.py tenant create`.
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(PublicOnlyAdmin):
    list_display = ("prefix", "tenant", "label", "created_at", "last_used_at", "revoked_at")
    list_filter = ("tenant",)
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a key is shown once, so it is issued by `manage.py tenant apikey`

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset.filter(revoked_at__isnull=True):
            services.apikey_revoke(key=key)
        messages.success(request, "Revoked.")


@admin.register(SourceRoute)
class SourceRouteAdmin(PublicOnlyAdmin):
    list_display = ("id", "tenant", "created_at")
    list_filter = ("tenant",)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Membership)
class MembershipAdmin(PublicOnlyAdmin):
    """Who may open which tenant's console (staff see every tenant without one)."""

    list_display = ("user", "tenant", "role", "created_at")
    list_filter = ("tenant", "role")
    search_fields = ("user__username", "tenant__slug")
