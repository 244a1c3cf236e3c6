"""Capacity per tenant and for the platform: latency percentiles, throughput, headroom, recommendations.

Where each measurement comes from (docs/observability.md, Capacity):

- ingest: the per-tenant sketch kept in Redis by the minute
  (observability/ingest_capacity.py), measured around the fast path;
- polls: the tenant's poll runs (`engines_pollrun`: started/finished, status,
  events), percentiles computed by PostgreSQL over the window;
- callbacks: the tenant's delivery attempts (`callbacks_delivery`: duration,
  status, changes carried) and the oldest change an active subscription has
  not had (the same query as `beastflow_changes_backlog_seconds`);
- queues and the monitor: `scheduling.queues` and `scheduling.claims` now,
  and their history, sampled every SAMPLE_EVERY_S by beat's observability
  tick into a capped Redis list, for the trend.

The platform view reads every ready tenant at once: one Redis pipeline for
ingest, one UNION ALL each for polls, callbacks and backlogs (as the
scrape-time gauges do), so its cost grows with tenants by rows, not round trips.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import structlog
from django.conf import settings
from django.db import connection

from observability.collectors import _BACKLOG_BRANCH, _union
from observability.ingest_capacity import IngestWindow, ingest_windows
from observability.recommendations import (
    PlatformFacts,
    QueueFacts,
    TenantFacts,
    percent,
    platform_recommendations,
    tenant_headroom,
    tenant_recommendations,
)

log = structlog.get_logger(__name__)

WINDOWS = {"15m": 15, "1h": 60}
DEFAULT_WINDOW = "15m"
SAMPLE_EVERY_S = 15.0
SAMPLES_KEPT = 240  # an hour at one sample every 15 s
TREND_S = 600.0  # the trend is read over the last ten minutes


# -- queue and monitor history (Redis) ---------------------------------------------


def _history_key() -> str:
    from beastflow.redis_client import key

    return key("cap", "queues")


def queues_now(now: float | None = None) -> dict[str, Any]:
    """Every queue's depth and lag and the monitor's lag, as a history sample (not stored)."""
    from scheduling.claims import oldest_due_eval
    from scheduling.queues import queue_states

    now = time.time() if now is None else now
    _, monitor_lag = oldest_due_eval()
    return {
        "t": round(now, 3),
        "monitor_lag_s": round(float(monitor_lag), 3),
        "queues": {state.name: [state.depth, state.oldest_age_s] for state in queue_states()},
    }


def queues_sample(now: float | None = None) -> dict[str, Any]:
    """Sample the queues and the monitor into the history (beat's tick, every SAMPLE_EVERY_S); returns the sample."""
    from beastflow.redis_client import get_redis

    sample = queues_now(now)
    client = get_redis()
    with client.pipeline(transaction=False) as pipe:
        pipe.rpush(_history_key(), json.dumps(sample))
        pipe.ltrim(_history_key(), -SAMPLES_KEPT, -1)
        pipe.expire(_history_key(), int(SAMPLES_KEPT * SAMPLE_EVERY_S * 2))
        pipe.execute()
    return sample


def queue_history(*, since: float) -> list[dict[str, Any]]:
    from beastflow.redis_client import get_redis

    samples = []
    for raw in get_redis().lrange(_history_key(), 0, -1):
        try:
            sample = json.loads(raw)
        except ValueError:
            continue
        if float(sample.get("t", 0)) >= since:
            samples.append(sample)
    return samples


def platform_facts(now: float | None = None) -> PlatformFacts:
    """The queues and the monitor now, with the last TREND_S of beat's samples behind them.

    Read only: a report viewed often must not crowd the history with samples of its own.
    """
    now = time.time() if now is None else now
    current = queues_now(now)
    history = queue_history(since=now - TREND_S)
    if not history or history[-1].get("t") != current["t"]:
        history.append(current)
    bound = float(getattr(settings, "BEASTFLOW_READY_QUEUE_LAG_S", 120.0))
    queues = []
    for name, (depth, lag) in sorted(current["queues"].items()):
        samples = tuple(
            (float(s["t"]), float((s["queues"].get(name) or [0, None])[1] or 0.0))
            for s in history
            if name in s.get("queues", {})
        )
        queues.append(QueueFacts(name=name, depth=int(depth), lag_s=lag, samples=samples, readiness_bound_s=bound))
    monitor = tuple((float(s["t"]), float(s.get("monitor_lag_s") or 0.0)) for s in history)
    return PlatformFacts(queues=tuple(queues), monitor_lag_s=current["monitor_lag_s"], monitor_samples=monitor)


# -- per tenant (PostgreSQL) -----------------------------------------------------


_POLLS_BRANCH = """
SELECT %s::text, count(*), count(*) FILTER (WHERE status = 'failed'), coalesce(sum(events), 0),
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM finished_at - started_at))
           FILTER (WHERE finished_at IS NOT NULL)
FROM {s}.engines_pollrun WHERE started_at >= now() - make_interval(secs => %s) AND status <> 'skipped'
"""

_CALLBACKS_BRANCH = """
SELECT %s::text, count(*), count(*) FILTER (WHERE status = 'failed'),
       coalesce(sum(count) FILTER (WHERE status = 'succeeded'), 0),
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY duration_ms)
FROM {s}.callbacks_delivery WHERE created_at >= now() - make_interval(secs => %s)
"""

_SOURCES_BRANCH = "SELECT %s::text, count(*) FROM {s}.engines_source"


def _rows(branch: str, schemas: Sequence[str], *params: Any) -> dict[str, tuple[Any, ...]]:
    if not schemas:
        return {}
    query, values = _union(branch, [(schema, schema) for schema in schemas], *params)
    with connection.cursor() as cursor:
        cursor.execute(query, values)
        return {row[0]: tuple(row[1:]) for row in cursor.fetchall()}


def _backlogs(schemas: Sequence[str]) -> dict[str, float]:
    """The oldest change any active subscription of each tenant has not had, in seconds."""
    if not schemas:
        return {}
    query, values = _union(_BACKLOG_BRANCH, [(schema, schema) for schema in schemas])
    backlog: dict[str, float] = {}
    with connection.cursor() as cursor:
        cursor.execute(query, values)
        for schema, _, age in cursor.fetchall():
            backlog[schema] = max(backlog.get(schema, 0.0), max(0.0, float(age)))
    return backlog


def _ms(values: Sequence[float | None] | None, scale: float) -> dict[str, float | None]:
    names = ("p50_ms", "p95_ms", "p99_ms")
    if not values:
        return dict.fromkeys(names)
    return {name: None if v is None else round(float(v) * scale, 2) for name, v in zip(names, values, strict=True)}


def tenants_capacity(tenants: Sequence[Any], *, window: str = DEFAULT_WINDOW) -> list[dict[str, Any]]:
    """Each tenant's capacity report (see `tenant_render`), reading all of them together."""
    minutes = WINDOWS[window]
    window_s = minutes * 60
    schemas = [tenant.schema_name for tenant in tenants]
    ingest = ingest_windows(schemas, minutes=minutes)
    polls = _rows(_POLLS_BRANCH, schemas, window_s)
    callbacks = _rows(_CALLBACKS_BRANCH, schemas, window_s)
    sources = _rows(_SOURCES_BRANCH, schemas)
    backlogs = _backlogs(schemas)
    return [
        tenant_render(
            tenant,
            window=window,
            ingest=ingest[tenant.schema_name],
            polls=polls.get(tenant.schema_name),
            callbacks=callbacks.get(tenant.schema_name),
            sources=int((sources.get(tenant.schema_name) or (0,))[0]),
            backlog_s=backlogs.get(tenant.schema_name),
        )
        for tenant in tenants
    ]


def tenant_render(
    tenant: Any,
    *,
    window: str,
    ingest: IngestWindow,
    polls: tuple[Any, ...] | None,
    callbacks: tuple[Any, ...] | None,
    sources: int,
    backlog_s: float | None,
) -> dict[str, Any]:
    window_s = WINDOWS[window] * 60
    poll_runs, poll_failed, poll_events, poll_q = polls or (0, 0, 0, None)
    deliveries, delivery_failed, delivered, delivery_q = callbacks or (0, 0, 0, None)
    poll_latency = _ms(poll_q, 1000.0)
    callback_latency = _ms(delivery_q, 1.0)
    facts = TenantFacts(
        slug=tenant.slug,
        quota_events_per_s=float(tenant.ingest_rate_per_s),
        peak_events_per_s=ingest.peak_events_per_s,
        events_per_s=ingest.events_per_s,
        throttled=ingest.throttled,
        ingest_p99_ms=ingest.latency["p99_ms"],
        sources=sources,
        max_sources=int(tenant.max_sources),
        polls=int(poll_runs),
        polls_failed=int(poll_failed),
        poll_p95_s=None if poll_latency["p95_ms"] is None else poll_latency["p95_ms"] / 1000,
        deliveries=int(deliveries),
        deliveries_failed=int(delivery_failed),
        callback_p95_ms=callback_latency["p95_ms"],
        callback_backlog_s=backlog_s,
    )
    headroom = tenant_headroom(facts)
    return {
        "tenant": tenant.slug,
        "window": window,
        "window_s": window_s,
        "ingest": {
            "requests": ingest.requests,
            "events": ingest.events,
            "requests_per_s": round(ingest.requests_per_s, 3),
            "events_per_s": round(ingest.events_per_s, 3),
            "peak_events_per_s": round(ingest.peak_events_per_s, 3),
            "quota_events_per_s": int(tenant.ingest_rate_per_s),
            "quota_used_pct": percent(ingest.peak_events_per_s, float(tenant.ingest_rate_per_s)),
            "headroom_pct": headroom.ingest_pct,
            "failed": ingest.errors,
            "throttled": ingest.throttled,
            "latency": ingest.latency,
            "events_per_s_by_minute": [round(rate, 3) for rate in ingest.per_minute],
        },
        "polls": {
            "runs": int(poll_runs),
            "failed": int(poll_failed),
            "error_pct": percent(int(poll_failed), int(poll_runs)) if poll_runs else None,
            "runs_per_min": round(60 * int(poll_runs) / window_s, 3),
            "events": int(poll_events),
            "latency": poll_latency,
        },
        "callbacks": {
            "deliveries": int(deliveries),
            "failed": int(delivery_failed),
            "failure_pct": percent(int(delivery_failed), int(deliveries)) if deliveries else None,
            "changes_per_s": round(int(delivered) / window_s, 3),
            "latency": callback_latency,
            "backlog_s": None if backlog_s is None else round(backlog_s, 1),
        },
        "sources": {
            "count": sources,
            "max": int(tenant.max_sources),
            "used_pct": percent(sources, float(tenant.max_sources)),
            "headroom_pct": headroom.sources_pct,
        },
        "recommendations": [advice.as_dict() for advice in tenant_recommendations(facts)],
    }


def platform_capacity(*, window: str = DEFAULT_WINDOW) -> dict[str, Any]:
    """Every ready tenant's capacity, the queues and the monitor, and the recommendations for operators."""
    from tenants.models import Tenant

    tenants = list(Tenant.objects.filter(ready=True).exclude(schema_name="public").order_by("slug"))
    rows = tenants_capacity(tenants, window=window)
    facts = platform_facts()
    platform_advice = [advice.as_dict() for advice in platform_recommendations(facts)]
    tenant_advice = [advice for row in rows for advice in row["recommendations"]]
    order = {"critical": 0, "warning": 1, "info": 2}
    return {
        "window": window,
        "window_s": WINDOWS[window] * 60,
        "queues": [
            {
                "queue": queue.name,
                "depth": queue.depth,
                "lag_s": None if queue.lag_s is None else round(queue.lag_s, 3),
                "lag_trend_s_per_min": _slope(queue.samples),
                "readiness_bound_s": queue.readiness_bound_s,
                "headroom_pct": _lag_headroom(queue.lag_s, queue.readiness_bound_s),
                "samples": len(queue.samples),
            }
            for queue in facts.queues
        ],
        "monitor": {
            "lag_s": facts.monitor_lag_s,
            "lag_trend_s_per_min": _slope(facts.monitor_samples),
        },
        "tenants": rows,
        "recommendations": sorted(platform_advice + tenant_advice, key=lambda a: order.get(a["severity"], 3)),
    }


def _slope(samples: Sequence[tuple[float, float]]) -> float | None:
    from observability.recommendations import slope_per_min

    slope = slope_per_min(samples)
    return None if slope is None else round(slope, 3)


def _lag_headroom(lag: float | None, bound: float | None) -> float | None:
    if bound is None or bound <= 0:
        return None
    return round(max(0.0, 100.0 * (1 - (lag or 0.0) / bound)), 1)
