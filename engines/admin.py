from __future__ import annotations

from django.contrib import admin

from beastflow.admin_tenant import TenantOnlyAdmin
from engines.models import Source


@admin.register(Source)
class SourceAdmin(TenantOnlyAdmin):
    list_display = ("id", "name", "connector", "mode", "paused", "mode_since", "created_at")
    list_filter = ("mode", "paused", "connector")
    search_fields = ("name",)
    readonly_fields = ("id", "mode", "mode_since", "created_at", "updated_at")
    exclude = ("webhook_secret_encrypted",)
