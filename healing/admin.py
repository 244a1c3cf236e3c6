from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from beastflow.admin_tenant import TenantOnlyAdmin
from healing.models import FailureRecord, HealingAction, HealingEvent, RCAResult, StrategyStats


@admin.register(FailureRecord)
class FailureRecordAdmin(TenantOnlyAdmin):
    list_display = ("id", "kind", "source", "status", "occurrences", "first_seen", "last_seen")
    list_filter = ("kind", "status")
    readonly_fields = ("fingerprint", "occurrences", "first_seen", "last_seen", "detail", "correlation_id")


@admin.register(HealingAction)
class HealingActionAdmin(TenantOnlyAdmin):
    list_display = ("id", "strategy", "source", "risk", "status", "requested_at", "decided_by", "decided_at")
    list_filter = ("strategy", "status", "risk")
    # Decisions go through the API (healing.services), which starts the work.
    readonly_fields = [field.name for field in HealingAction._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(RCAResult)
class RCAResultAdmin(TenantOnlyAdmin):
    list_display = ("id", "category", "confidence", "source", "failure", "confirmed_category", "created_at")
    list_filter = ("category", "confirmed_category")
    # Confirmation goes through the console or the API (healing.rca.analysis.rca_confirm).
    readonly_fields = [field.name for field in RCAResult._meta.fields]


@admin.register(StrategyStats)
class StrategyStatsAdmin(TenantOnlyAdmin):
    list_display = ("category", "strategy", "successes", "failures", "updated_at")
    list_filter = ("category", "strategy")


@admin.register(HealingEvent)
class HealingEventAdmin(TenantOnlyAdmin):
    list_display = ("id", "action", "kind", "actor", "at")
    list_filter = ("kind",)
    readonly_fields = [field.name for field in HealingEvent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
