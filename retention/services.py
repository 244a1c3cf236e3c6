"""One retention pass over a tenant: partitions ahead, then what is past retention (docs/scaling.md)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.db.models import Min
from django.utils import timezone
from django_tenants.utils import schema_context

from callbacks.models import Subscription
from engines.partitions import (
    ChangesDrop,
    changes_drop_before,
    events_delete_before,
    health_samples_drop_before,
    partitions_ensure,
)
from tenants.models import Tenant

log = structlog.get_logger(__name__)


@dataclass
class RetentionPass:
    schema: str
    partitions_made: list[str] = field(default_factory=list)
    changes: ChangesDrop | None = None
    health_partitions_dropped: list[str] = field(default_factory=list)
    health_samples_deleted: int = 0
    events_deleted: int = 0
    seconds: float = 0.0


def retention_pass(*, tenant: Tenant, now: datetime | None = None) -> RetentionPass:
    """Partitions ahead, then health samples, changes and events past the tenant's retention.

    Steps: make the partitions due ahead (engines.partitions); drop the
    health samples older than BEASTFLOW_HEALTH_RETENTION_H; unless the
    tenant keeps changes forever (0 days), drop the weeks of changes past its
    retention that no callback subscription still needs (the lowest cursor of
    any subscription, active or disabled, holds the floor); unless it keeps
    events forever, delete the events past its retention, for a bounded time
    (a long backlog is finished by later passes).
    """
    started = time.perf_counter()
    now = now or timezone.now()
    schema = tenant.schema_name
    result = RetentionPass(schema=schema)
    result.partitions_made = partitions_ensure(schema=schema, now=now)
    health_cutoff = now - timedelta(hours=settings.BEASTFLOW_HEALTH_RETENTION_H)
    result.health_partitions_dropped, result.health_samples_deleted = health_samples_drop_before(
        schema=schema, cutoff=health_cutoff
    )
    if tenant.change_retention_days > 0:
        with schema_context(schema):
            keep_after = Subscription.objects.aggregate(lowest=Min("cursor"))["lowest"]
        result.changes = changes_drop_before(
            schema=schema, cutoff=now - timedelta(days=tenant.change_retention_days), keep_after=keep_after
        )
    if tenant.event_retention_days > 0:
        result.events_deleted = events_delete_before(
            schema=schema,
            cutoff=now - timedelta(days=tenant.event_retention_days),
            budget_s=settings.BEASTFLOW_RETENTION_EVENTS_BUDGET_S,
        )
    result.seconds = time.perf_counter() - started
    log.info(
        "retention_pass",
        tenant=tenant.slug,
        partitions_made=len(result.partitions_made),
        changes_partitions_dropped=len(result.changes.dropped) if result.changes else 0,
        changes_floor=result.changes.floor if result.changes else None,
        health_samples_deleted=result.health_samples_deleted,
        events_deleted=result.events_deleted,
        seconds=round(result.seconds, 3),
    )
    return result
