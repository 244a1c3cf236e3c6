from __future__ import annotations

from django.contrib import admin

from beastflow.admin_tenant import TenantAuditAdmin
from console.models import OperatorAction


@admin.register(OperatorAction)
class OperatorActionAdmin(TenantAuditAdmin):
    list_display = ("id", "created_at", "actor", "action", "source_name", "reason", "correlation_id")
    list_filter = ("action",)
    search_fields = ("actor", "source_name", "reason", "correlation_id")
    date_hierarchy = "created_at"
