"""Thin tasks of tenants: keeping spare schemas ready (tenants.schema_spares)."""

from __future__ import annotations

import structlog

from beastflow.celery import app
from tenants.schema_spares import spares_fill
from tenants.schema_template import TemplateError

log = structlog.get_logger(__name__)


@app.task(ignore_result=True, expires=60.0)
def spares_fill_task() -> int:
    """After a tenant took a spare, and once a minute from the clock: spares up to BEASTFLOW_TENANT_SPARES."""
    try:
        return spares_fill()
    except TemplateError as exc:
        # A worker older than the database's migrations (a rolling deploy): the newer ones fill.
        log.warning("tenant_spares_not_filled", reason=str(exc))
        return 0
