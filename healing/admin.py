from __future__ import annotations

from django.contrib import admin

from beastflow.admin_tenant import TenantOnlyAdmin
from healing.models import FailureRecord


@admin.register(FailureRecord)
class FailureRecordAdmin(TenantOnlyAdmin):
    list_display = ("id", "kind", "source", "status", "occurrences", "first_seen", "last_seen")
    list_filter = ("kind", "status")
    readonly_fields = ("fingerprint", "occurrences", "first_seen", "last_seen", "detail", "correlation_id")
