"""Thin tasks of tenants: keeping spare schemas ready (tenants.schema_spares)."""

from __future__ import annotations

from beastflow.celery import app
from tenants.schema_spares import spares_fill


@app.task(ignore_result=True, expires=60.0)
def spares_fill_task() -> int:
    """After a tenant took a spare, and once a minute from the clock: spares up to BEASTFLOW_TENANT_SPARES."""
    return spares_fill()
