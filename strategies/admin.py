"""Admin: versions are read-only (immutable); experiments are read here and decided in the console or the API."""

from __future__ import annotations

from django.contrib import admin

from beastflow.admin_tenant import TenantAuditAdmin
from strategies.models import Assignment, Experiment, SourceStrategy, StrategyConfig, StrategyVersion, TenantStrategy


@admin.register(StrategyConfig)
class StrategyConfigAdmin(TenantAuditAdmin):
    list_display = ("name", "description", "created_at")


@admin.register(StrategyVersion)
class StrategyVersionAdmin(TenantAuditAdmin):
    list_display = ("config", "number", "author", "reason", "restores", "created_at")
    list_filter = ("config",)


@admin.register(TenantStrategy)
class TenantStrategyAdmin(TenantAuditAdmin):
    list_display = ("id", "default_version", "auto_promote", "updated_at")


@admin.register(SourceStrategy)
class SourceStrategyAdmin(TenantAuditAdmin):
    list_display = ("source", "version", "assigned_by", "assigned_at", "experiment")


class AssignmentInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Assignment
    extra = 0
    readonly_fields = ("source", "arm", "stratum", "previous_version_id")
    can_delete = False


@admin.register(Experiment)
class ExperimentAdmin(TenantAuditAdmin):
    list_display = ("name", "status", "metric", "control", "treatment", "p_value", "started_at", "ended_at")
    list_filter = ("status", "metric")
    inlines = [AssignmentInline]
