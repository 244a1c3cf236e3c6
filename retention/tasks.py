"""Thin tasks: the hourly retention pass, one task per tenant."""

from __future__ import annotations

from beastflow.celery import app
from beastflow.tasks import fan_out_to_tenants
from beastflow.tenancy import current_tenant
from retention.services import retention_pass


@app.task(ignore_result=True)
def retention_pass_task() -> int:
    """In the tenant's schema (tenant-schemas-celery): one pass; the events it deleted."""
    return retention_pass(tenant=current_tenant()).events_deleted


@app.task(ignore_result=True)
def retention_all_task() -> int:
    return fan_out_to_tenants(retention_pass_task)
