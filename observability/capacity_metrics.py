"""Scrape-time gauges of each tenant's ingest against its quota, from the capacity recorder's minutes in Redis.

For the `BeastFlowTenantNearIngestQuota` alert (ops/prometheus/alerts.yml):
the last whole minute's events per second and the quota, per ready tenant
(one series each per tenant, like `beastflow_sources`). One query for the
tenants and one Redis pipeline (a field of one hash per tenant) per scrape.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import structlog
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = structlog.get_logger(__name__)


class TenantIngestCollector(Collector):
    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Without describe() the registry would collect (query the database) when registering.
        yield GaugeMetricFamily("beastflow_tenant_ingest_events_per_second", "", labels=["tenant"])
        yield GaugeMetricFamily("beastflow_tenant_ingest_quota_events_per_second", "", labels=["tenant"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from beastflow.redis_client import get_redis
        from observability.ingest_capacity import MINUTE_S, minute_key
        from tenants.models import Tenant

        try:
            tenants = list(
                Tenant.objects.filter(ready=True)
                .exclude(schema_name="public")
                .order_by("slug")
                .values_list("slug", "schema_name", "ingest_rate_per_s")
            )
            last_minute = int(time.time() // MINUTE_S) - 1
            with get_redis().pipeline(transaction=False) as pipe:
                for _, schema, _ in tenants:
                    pipe.hget(minute_key(schema, last_minute), "ev")
                events = pipe.execute()
        except Exception:
            log.warning("metrics_collect_failed", family="tenant_ingest", exc_info=True)
            return
        rate = GaugeMetricFamily(
            "beastflow_tenant_ingest_events_per_second",
            "Events a tenant pushed per second over the last whole minute (the capacity recorder)",
            labels=["tenant"],
        )
        quota = GaugeMetricFamily(
            "beastflow_tenant_ingest_quota_events_per_second",
            "A tenant's sustained ingest quota (events per second)",
            labels=["tenant"],
        )
        for (slug, _, limit), count in zip(tenants, events, strict=True):
            rate.add_metric([slug], int(count or 0) / MINUTE_S)
            quota.add_metric([slug], float(limit))
        yield rate
        yield quota
