from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from beastflow.admin_tenant import TenantOnlyAdmin
from engines.models import ReconciliationRun, Source


@admin.register(Source)
class SourceAdmin(TenantOnlyAdmin):
    list_display = ("id", "name", "connector", "mode", "paused", "mode_since", "created_at")
    list_filter = ("mode", "paused", "connector")
    search_fields = ("name",)
    readonly_fields = ("id", "mode", "mode_since", "created_at", "updated_at")
    exclude = ("webhook_secret_encrypted",)


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(TenantOnlyAdmin):
    list_display = (
        "id", "source", "trigger", "status", "mode", "started_at", "missing", "changed", "deleted", "corrections",
    )  # fmt: skip
    list_filter = ("status", "trigger", "mode")
    # Runs are written by the engine only; the admin shows them.
    readonly_fields = [field.name for field in ReconciliationRun._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
