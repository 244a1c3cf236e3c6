"""Admin for tenant-schema models: shown on a tenant's host only."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from beastflow.tenancy import PUBLIC, current_schema


class TenantOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_module_permission(self, request: HttpRequest) -> bool:
        # The public schema has no tenant tables: hide them there.
        return current_schema() != PUBLIC and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return current_schema() != PUBLIC and super().has_view_permission(request, obj)


class TenantAuditAdmin(TenantOnlyAdmin):
    """Rows the engines or the console write as a record of what happened: view only."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
