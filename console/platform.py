"""The platform view (staff): every tenant's throughput, quota use and errors, the workers and queues.

Reads each tenant's schema in turn (a handful of indexed aggregates per
tenant) and the `/readyz` components, so the page shows the same truth the
readiness probe acts on.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone
from django_tenants.utils import tenant_context

from beastflow import health
from beastflow.redis_client import get_redis
from console.formatting import rate_text
from console.selectors import latest_rates
from engines.models import PollRun, Source
from healing.models import FailureRecord, FailureStatus
from tenants.models import Tenant

ERROR_WINDOW = timedelta(hours=1)


def _percent(used: float, limit: float) -> int | None:
    return None if limit <= 0 else round(100 * used / limit)


def tenant_stats(tenant: Tenant) -> dict[str, Any]:
    """One tenant's row; call inside its tenant_context."""
    modes = dict(
        Source.objects.filter(paused=False).values_list("mode").annotate(n=Count("id")).values_list("mode", "n")
    )
    sources = Source.objects.count()
    rates = [r for r in latest_rates().values() if r is not None]
    events_per_s = sum(rates) if rates else 0.0
    polls = PollRun.objects.filter(started_at__gte=timezone.now() - ERROR_WINDOW).aggregate(
        total=Count("id"), failed=Count("id", filter=Q(status="failed"))
    )
    return {
        "sources": sources,
        "paused": Source.objects.filter(paused=True).count(),
        "modes": {mode: modes.get(mode, 0) for mode in ("event", "hybrid", "polling")},
        "events_per_s": events_per_s,
        "events_per_s_text": rate_text(events_per_s),
        "ingest_quota_pct": _percent(events_per_s, tenant.ingest_rate_per_s),
        "sources_quota_pct": _percent(sources, tenant.max_sources),
        "open_failures": FailureRecord.objects.filter(status=FailureStatus.OPEN).count(),
        "polls_last_hour": polls["total"],
        "poll_error_pct": _percent(polls["failed"], polls["total"]) if polls["total"] else None,
    }


def queue_depths() -> list[dict[str, Any]]:
    """Messages waiting in each Celery queue (Redis lists, with kombu's priority sub-lists)."""
    prefix = str(settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", ""))
    client = get_redis()
    names = {"celery"} | set(getattr(settings, "CELERY_TASK_QUEUES", None) or ())
    rows = []
    for name in sorted(names):
        depth = 0
        for key in client.scan_iter(match=f"{prefix}{name}*", count=100):
            decoded = key.decode() if isinstance(key, bytes) else str(key)
            # The queue list and its priority lists ("<name>\x06\x16<n>"); not kombu's bindings or unacked sets.
            ours = decoded == f"{prefix}{name}" or decoded.startswith(f"{prefix}{name}\x06\x16")
            if ours and client.type(key) in (b"list", "list"):
                depth += int(client.llen(key))
        rows.append({"queue": name, "depth": depth})
    return rows


def platform_report() -> dict[str, Any]:
    ready, components = health.readiness()
    tenants = []
    for tenant in Tenant.objects.exclude(schema_name="public").order_by("slug"):
        domain = tenant.domains.filter(is_primary=True).first() or tenant.domains.first()
        row: dict[str, Any] = {
            "tenant": tenant,
            "domain": domain.domain if domain else f"{tenant.slug}.{settings.BEASTFLOW_BASE_DOMAIN}",
            "stats": None,
        }
        if tenant.ready:
            with tenant_context(tenant):
                row["stats"] = tenant_stats(tenant)
        tenants.append(row)
    engines = {name: entry for name, entry in components.items() if "last_pass_age_s" in entry}
    return {
        "ready": ready,
        "components": sorted(components.items()),
        "tenants": tenants,
        "queues": queue_depths(),
        "engines": sorted(engines.items()),
        "monitor_lag_s": (components.get("monitor") or {}).get("last_pass_age_s"),
        "tick_s": settings.BEASTFLOW_MONITOR_TICK_S,
        "now_at": timezone.now(),
    }
