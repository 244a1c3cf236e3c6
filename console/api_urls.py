"""The console's read models over the API: /api/v1/sources/{id}/diagnostics and /api/v1/audit."""

from __future__ import annotations

from django.urls import path

from console import apis

urlpatterns = [
    path("sources/<str:source_id>/diagnostics", apis.SourceDiagnosticsApi.as_view(), name="source-diagnostics"),
    path("audit", apis.AuditApi.as_view(), name="audit-api"),
]
