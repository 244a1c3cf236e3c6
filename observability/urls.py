"""Capacity and failure recordings over the API (docs/observability.md)."""

from __future__ import annotations

from django.urls import path

from observability import apis

urlpatterns = [
    path("capacity", apis.CapacityApi.as_view(), name="capacity"),
    path("platform/capacity", apis.PlatformCapacityApi.as_view(), name="platform-capacity"),
    path("failures/<str:failure_id>/recording", apis.FailureRecordingApi.as_view(), name="failure-recording"),
]
