from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from beastflow.admin_tenant import TenantOnlyAdmin
from callbacks.models import Delivery, Subscription


@admin.register(Subscription)
class SubscriptionAdmin(TenantOnlyAdmin):
    list_display = (
        "id",
        "url",
        "status",
        "signature",
        "cursor",
        "breaker_status",
        "failures",
        "last_success_at",
        "created_at",
    )
    list_filter = ("status", "breaker_status", "signature")
    search_fields = ("url",)
    readonly_fields = (
        "signature",  # chosen with a secret of its format at creation (API)
        "cursor",
        "epoch",
        "failures",
        "failing_since",
        "next_attempt_at",
        "breaker",
        "breaker_status",
        "delivered_changes",
        "attempts_total",
        "failures_total",
        "last_success_at",
        "last_failure_at",
        "last_error",
        "disabled_at",
        "created_at",
        "updated_at",
    )
    exclude = ("secret_encrypted", "lease_token", "lease_until")


@admin.register(Delivery)
class DeliveryAdmin(TenantOnlyAdmin):
    list_display = ("id", "subscription", "first_seq", "last_seq", "attempt", "status", "http_status", "created_at")
    list_filter = ("status",)
    list_select_related = ("subscription",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a record of what happened: never typed in

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
