"""Gauges computed when /metrics is scraped, from the database: sources per mode, per-source health, callback backlog.

Why at scrape time: a source's mode or score is state in the database,
written by whichever worker judged it last; a gauge set in that worker's
memory would be stale or double-counted across processes. Reading the
tables when Prometheus asks is always right and costs two queries per
scrape (each a UNION ALL over the ready tenants' schemas, one round trip).

Cardinality is bounded (docs/observability.md):
- `beastflow_sources{mode,tenant}`: tenants x 3 modes;
- per-source series (`beastflow_source_health_score` and the two ages) for
  at most BEASTFLOW_METRICS_SOURCE_LIMIT unpaused sources, the ones most in
  need of attention first (not in event mode, then the lowest score), the
  rest counted in `beastflow_metrics_sources_omitted`;
- `beastflow_changes_backlog_seconds` for at most
  BEASTFLOW_METRICS_SUBSCRIPTION_LIMIT active subscriptions, the furthest
  behind first, the rest counted in `beastflow_metrics_subscriptions_omitted`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import structlog
from django.conf import settings
from django.db import connection
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = structlog.get_logger(__name__)

SOURCE_LABELS = ["tenant", "source", "name", "mode"]
MODES = ("event", "hybrid", "polling")


def _ready_schemas() -> list[tuple[str, str]]:
    from tenants.models import Tenant

    return list(
        Tenant.objects.filter(ready=True)
        .exclude(schema_name="public")
        .order_by("slug")
        .values_list("slug", "schema_name")
    )


def _union(branch: str, schemas: Sequence[tuple[str, str]], *more: Any) -> tuple[str, list[Any]]:
    """`branch` once per schema, UNION ALL: {s} is the quoted schema, the first %s its label, the rest `more`."""
    parts, params = [], []
    for label, schema in schemas:
        parts.append("(" + branch.format(s=connection.ops.quote_name(schema)) + ")")
        params += [label, *more]
    return " UNION ALL ".join(parts), params


_MODES_BRANCH = "SELECT %s, mode, count(*), count(*) FILTER (WHERE NOT paused) FROM {s}.engines_source GROUP BY mode"

# The limit is applied per schema too, so no branch returns more rows than can be kept.
_SOURCES_BRANCH = """
SELECT %s, s.id, s.name, s.mode, s.health_score,
       CASE WHEN s.push->>'expected' = 'false' THEN NULL ELSE EXTRACT(EPOCH FROM now() - s.mode_since) END,
       EXTRACT(EPOCH FROM now() - COALESCE(st.last_event_at, s.created_at))
FROM {s}.engines_source s LEFT JOIN {s}.engines_streamstate st ON st.source_id = s.id
WHERE NOT s.paused
ORDER BY (s.mode = 'event'), s.health_score ASC NULLS FIRST, s.id
LIMIT %s
"""

# The oldest change a subscription has not had yet: the first one after its
# cursor among its sources (all when `sources` is null).
_BACKLOG_BRANCH = """
SELECT %s, sub.id, EXTRACT(EPOCH FROM now() - first_missing.committed_at)
FROM {s}.callbacks_subscription sub
CROSS JOIN LATERAL (
    SELECT c.committed_at FROM {s}.engines_change c
    WHERE c.seq > sub.cursor
      AND (sub.sources IS NULL OR jsonb_typeof(sub.sources) <> 'array' OR jsonb_array_length(sub.sources) = 0
           OR c.source_id IN (SELECT value::bigint FROM jsonb_array_elements_text(sub.sources)))
    ORDER BY c.seq LIMIT 1
) first_missing
WHERE sub.status = 'active'
"""


class SourcesCollector(Collector):
    """beastflow_sources, per-source health and ages, and the callbacks' backlog."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Without describe() the registry would collect (query the database) when registering.
        yield GaugeMetricFamily("beastflow_sources", "", labels=["mode", "tenant"])
        yield GaugeMetricFamily("beastflow_source_health_score", "", labels=SOURCE_LABELS)
        yield GaugeMetricFamily("beastflow_source_mode_age_seconds", "", labels=SOURCE_LABELS)
        yield GaugeMetricFamily("beastflow_source_last_event_age_seconds", "", labels=SOURCE_LABELS)
        yield GaugeMetricFamily("beastflow_metrics_sources_omitted", "", value=0)
        yield GaugeMetricFamily("beastflow_changes_backlog_seconds", "", labels=["tenant", "subscription"])
        yield GaugeMetricFamily("beastflow_metrics_subscriptions_omitted", "", value=0)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            schemas = _ready_schemas()
        except Exception:
            log.warning("metrics_tenants_failed", exc_info=True)
            return
        if not schemas:
            return
        # A scrape must not fail on one family: the rest (and the queue gauges
        # of other collectors) still tell the operator something.
        unpaused: int | None = None
        try:
            family, unpaused = self._modes(schemas)
            yield family
        except Exception:
            log.warning("metrics_collect_failed", family="modes", exc_info=True)
        try:
            yield from self._sources(schemas, unpaused)
        except Exception:
            log.warning("metrics_collect_failed", family="sources", exc_info=True)
        try:
            yield from self._backlog(schemas)
        except Exception:
            log.warning("metrics_collect_failed", family="backlog", exc_info=True)

    def _modes(self, schemas: Sequence[tuple[str, str]]) -> tuple[GaugeMetricFamily, int]:
        query, params = _union(_MODES_BRANCH, schemas)
        counts = {(slug, mode): 0 for slug, _ in schemas for mode in MODES}
        unpaused = 0
        with connection.cursor() as cursor:
            cursor.execute(query, params)
            for slug, mode, count, active in cursor.fetchall():
                counts[(slug, mode)] = int(count)
                unpaused += int(active)
        family = GaugeMetricFamily("beastflow_sources", "Sources per mode and tenant", labels=["mode", "tenant"])
        for (slug, mode), count in sorted(counts.items()):
            family.add_metric([mode, slug], count)
        return family, unpaused

    def _sources(self, schemas: Sequence[tuple[str, str]], unpaused: int | None) -> Iterator[GaugeMetricFamily]:
        limit = max(0, int(settings.BEASTFLOW_METRICS_SOURCE_LIMIT))
        query, params = _union(_SOURCES_BRANCH, schemas, limit)
        query = (
            f"SELECT * FROM ({query}) u(tenant, id, name, mode, score, mode_age, silence) "  # noqa: S608 (quoted schema names)
            "ORDER BY (mode = 'event'), score ASC NULLS FIRST, tenant, id LIMIT %s"
        )
        with connection.cursor() as cursor:
            cursor.execute(query, [*params, limit])
            rows = cursor.fetchall()
        score = GaugeMetricFamily(
            "beastflow_source_health_score",
            "Health score of a source (0-100, the monitor's last judgement)",
            labels=SOURCE_LABELS,
        )
        mode_age = GaugeMetricFamily(
            "beastflow_source_mode_age_seconds", "How long a source has been in its current mode", labels=SOURCE_LABELS
        )
        silence = GaugeMetricFamily(
            "beastflow_source_last_event_age_seconds",
            "Time since a source's last event (since its creation when it never had one)",
            labels=SOURCE_LABELS,
        )
        for tenant, source_id, name, mode, health, age, quiet in rows:
            labels = [tenant, str(source_id), name, mode]
            if health is not None:
                score.add_metric(labels, float(health))
            # Clamped: now() is the transaction's start, which a row written in it may follow.
            # None: a source that expects no push is in polling by design, not stuck there.
            if age is not None:
                mode_age.add_metric(labels, max(0.0, float(age)))
            silence.add_metric(labels, max(0.0, float(quiet)))
        yield score
        yield mode_age
        yield silence
        if unpaused is not None:
            yield GaugeMetricFamily(
                "beastflow_metrics_sources_omitted",
                "Unpaused sources left out of the per-source series (BEASTFLOW_METRICS_SOURCE_LIMIT)",
                value=max(0, unpaused - len(rows)),
            )

    def _backlog(self, schemas: Sequence[tuple[str, str]]) -> Iterator[GaugeMetricFamily]:
        limit = max(0, int(settings.BEASTFLOW_METRICS_SUBSCRIPTION_LIMIT))
        query, params = _union(_BACKLOG_BRANCH, schemas)
        query = f"SELECT * FROM ({query}) u(tenant, id, age) ORDER BY age DESC"  # noqa: S608 (quoted schema names)
        with connection.cursor() as cursor:
            cursor.execute(query, params)
            rows = cursor.fetchall()
        family = GaugeMetricFamily(
            "beastflow_changes_backlog_seconds",
            "Age of the oldest change a callback subscription has not had yet (absent: caught up)",
            labels=["tenant", "subscription"],  # not the URL: it may carry a token
        )
        for tenant, sub_id, age in rows[:limit]:
            family.add_metric([tenant, str(sub_id)], max(0.0, float(age)))
        yield family
        yield GaugeMetricFamily(
            "beastflow_metrics_subscriptions_omitted",
            "Subscriptions behind the feed left out of beastflow_changes_backlog_seconds",
            value=max(0, len(rows) - limit),
        )
