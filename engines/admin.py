from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from beastflow.admin_tenant import TenantAuditAdmin, TenantOnlyAdmin
from engines import sources
from engines.admin_forms import SourceAdminForm
from engines.models import ModeSwitch, PollRun, ReconciliationRun, Source


@admin.register(Source)
class SourceAdmin(TenantOnlyAdmin):
    """Sources are written through the same services as the API: validated, never stored half-valid."""

    form = SourceAdminForm
    list_display = ("id", "name", "connector", "preset", "push_scheme", "mode", "paused", "mode_since", "created_at")
    list_filter = ("mode", "paused", "connector", "preset")
    search_fields = ("name",)
    readonly_fields = ("id", "push_secret_state", "mode", "mode_since", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("id", "name", "paused", "mode", "mode_since")}),
        ("Upstream", {"fields": ("preset", "connector", "config")}),
        ("Push", {"fields": ("push", "push_secret_state", "push_secret")}),
        ("Policies", {"fields": ("poll", "hysteresis", "reconcile", "health", "data_schema")}),
        (None, {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description="Push scheme")
    def push_scheme(self, obj: Source) -> str:
        return str((obj.push or {}).get("scheme") or "beastflow")

    @admin.display(description="Push secret")
    def push_secret_state(self, obj: Source) -> str:
        return "set (write-only)" if obj.push_secret_encrypted else "not set"

    def save_model(self, request: HttpRequest, obj: Source, form: Any, change: bool) -> None:
        definition = form.definition()
        try:
            if change:
                sources.source_update(source=obj, changes={**definition, "paused": form.cleaned_data["paused"]})
                return
            created, webhook_secret = sources.source_create(spec=sources.parse_spec(definition))
        except sources.SourceError as exc:  # a race the form's checks could not see (a name taken meanwhile)
            raise ValidationError(f"{exc.detail} {exc.errors}") from exc
        if form.cleaned_data["paused"]:
            sources.source_update(source=created, changes={"paused": True})
        obj.pk = created.pk
        obj.refresh_from_db()
        # Shown once, as the API does on creation.
        messages.warning(request, f"Webhook secret of {created.name} (shown once): {webhook_secret}")

    def delete_model(self, request: HttpRequest, obj: Source) -> None:
        sources.source_delete(source=obj)  # its records, events and route too

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        for source in queryset:
            sources.source_delete(source=source)


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
        "missed",
        "caught_up",
        "error_kind",
    )
    list_filter = ("status", "trigger", "error_kind")
    date_hierarchy = "started_at"
