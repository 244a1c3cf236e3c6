from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from beastflow.admin_tenant import TenantOnlyAdmin
from observability.models import FailureRecording


@admin.register(FailureRecording)
class FailureRecordingAdmin(TenantOnlyAdmin):
    list_display = ("id", "failure", "source_id", "window_start", "judgements", "size_bytes", "truncated", "created_at")
    list_filter = ("truncated",)
    # Made by the observability tick or POST /api/v1/failures/{id}/recording; replayed with manage.py replay_failure.
    readonly_fields = [field.name for field in FailureRecording._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
