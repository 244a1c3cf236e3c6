from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from beastflow.admin_tenant import TenantAuditAdmin, TenantOnlyAdmin
from engines.models import ModeSwitch, PollRun, ReconciliationRun, Source


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


@admin.register(ModeSwitch)
class ModeSwitchAdmin(TenantAuditAdmin):
    list_display = ("id", "source", "from_mode", "to_mode", "transition", "at", "validated", "rolled_back", "actor")
    list_filter = ("transition", "to_mode", "rolled_back")
    search_fields = ("reason", "correlation_id")
    date_hierarchy = "at"


@admin.register(PollRun)
class PollRunAdmin(TenantAuditAdmin):
    list_display = (
        "id",
        "source",
        "trigger",
        "status",
        "started_at",
        "events",
        "new_events",
        "caught_up",
        "error_kind",
    )
    list_filter = ("status", "trigger", "error_kind")
    date_hierarchy = "started_at"
