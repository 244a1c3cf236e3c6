"""The scrape-time gauges: sources per mode and tenant, per-source series within their limit, callback backlog."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from callbacks.models import Subscription
from engines.models import Change, Source
from observability.collectors import SourcesCollector
from tenants.models import Tenant
from tests.callbacks.support import insert_changes
from tests.factories import make_source


def _samples() -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in SourcesCollector().collect():
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def _value(samples: list[tuple[dict[str, str], float]], **labels: str) -> float | None:
    for found, value in samples:
        if all(found.get(name) == wanted for name, wanted in labels.items()):
            return value
    return None


def test_sources_are_counted_per_mode_and_tenant(in_acme: Tenant) -> None:
    # given
    before = _samples()["beastflow_sources"]
    polling_before = _value(before, mode="polling", tenant="acme") or 0
    make_source("counted-a")
    moved, _ = make_source("counted-b")
    Source.objects.filter(pk=moved.pk).update(mode="polling")
    # when
    after = _samples()["beastflow_sources"]
    # then
    assert _value(after, mode="polling", tenant="acme") == polling_before + 1
    assert _value(after, mode="hybrid", tenant="globex") is not None  # every mode of every tenant, zeros included


def test_per_source_series_put_the_sources_needing_attention_first_within_the_limit(in_acme: Tenant) -> None:
    # given: a healthy source, a sick one and one in polling for ten minutes
    healthy, _ = make_source("healthy")
    sick, _ = make_source("sick")
    polled, _ = make_source("polled")
    Source.objects.filter(pk=healthy.pk).update(health_score=100)
    Source.objects.filter(pk=sick.pk).update(health_score=-5)  # below any real score: first among event sources
    Source.objects.filter(pk=polled.pk).update(
        mode="polling", health_score=90, mode_since=timezone.now() - timedelta(minutes=10)
    )
    others = Source.objects.exclude(pk__in=[healthy.pk, sick.pk, polled.pk]).filter(paused=False).exclude(mode="event")
    assert not others.exists()  # the ordering below assumes no other source outside event mode
    # when: room for two series only
    with override_settings(BEASTFLOW_METRICS_SOURCE_LIMIT=2):
        samples = _samples()
    # then: the source in polling, then the lowest score; the rest counted as omitted
    scores = samples["beastflow_source_health_score"]
    shown = {labels["source"] for labels, _ in scores}
    assert shown == {str(polled.pk), str(sick.pk)}
    assert _value(scores, source=str(sick.pk), name="sick", mode="event", tenant="acme") == -5
    age = _value(samples["beastflow_source_mode_age_seconds"], source=str(polled.pk), mode="polling")
    assert age is not None and 590 < age < 700
    silence = _value(samples["beastflow_source_last_event_age_seconds"], source=str(sick.pk))
    assert silence is not None and silence >= 0
    omitted = samples["beastflow_metrics_sources_omitted"][0][1]
    assert omitted >= 1  # at least `healthy`


def test_a_source_polled_by_design_has_no_mode_age_to_alert_on(in_acme: Tenant) -> None:
    # given: two sources in polling for two hours, one of them declared to get no webhooks
    stuck, _ = make_source("stuck")
    by_design, _ = make_source("no-webhooks", push={"expected": False})
    Source.objects.filter(pk__in=[stuck.pk, by_design.pk]).update(
        mode="polling", mode_since=timezone.now() - timedelta(hours=2)
    )
    # when
    samples = _samples()
    # then: only the stuck one can fire BeastFlowSourceStuckInPolling; both keep their other series
    ages = samples["beastflow_source_mode_age_seconds"]
    assert (_value(ages, source=str(stuck.pk)) or 0) > 7000
    assert _value(ages, source=str(by_design.pk)) is None
    assert _value(samples["beastflow_source_last_event_age_seconds"], source=str(by_design.pk)) is not None


def test_backlog_is_the_age_of_the_oldest_change_a_subscription_has_not_had(in_acme: Tenant) -> None:
    # given: a subscription at the head, then three changes, the first committed a minute ago
    source, _ = make_source("backlogged")
    sub = Subscription.objects.create(url="http://127.0.0.1:9/hook?token=secret", cursor=_head(), secret_encrypted="x")
    caught_up = Subscription.objects.create(url="http://127.0.0.1:9/other", cursor=0, secret_encrypted="x")
    rendered = insert_changes(source.pk, 3)
    Change.objects.filter(seq=rendered[0]["seq"]).update(committed_at=timezone.now() - timedelta(seconds=60))
    Subscription.objects.filter(pk=caught_up.pk).update(cursor=rendered[-1]["seq"])
    # when
    backlog = _samples()["beastflow_changes_backlog_seconds"]
    # then
    age = _value(backlog, tenant="acme", subscription=str(sub.pk))
    assert age is not None and 59 < age < 120
    assert _value(backlog, tenant="acme", subscription=str(caught_up.pk)) is None
    assert all("url" not in labels for labels, _ in backlog)  # a URL may carry a token


def _head() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT last FROM engines_seqcounter WHERE id = 1")
        row: Any = cursor.fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize("limit", [0])
def test_a_zero_limit_leaves_only_the_counts(in_acme: Tenant, limit: int) -> None:
    make_source("unseen")
    with override_settings(BEASTFLOW_METRICS_SOURCE_LIMIT=limit, BEASTFLOW_METRICS_SUBSCRIPTION_LIMIT=limit):
        samples = _samples()
    assert samples.get("beastflow_source_health_score") is None
    assert samples["beastflow_metrics_sources_omitted"][0][1] >= 1
    assert samples["beastflow_sources"]
