"""Time partitions and retention in a tenant schema: partitions ahead, rows in the right one,
changes dropped a week at a time under a floor that readers are told about, events deleted in
batches with dedupe intact for what is kept, health samples kept exactly their period.

Each test runs in acme's schema inside the test's transaction (DDL included, rolled back),
except the websocket one, whose consumer reads on connections of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from beastflow.asgi import application
from callbacks.models import Subscription
from engines.ingest.commit import PendingBatch, commit_batches
from engines.ingest.validation import Event
from engines.models import HealthSample, SeqCounter
from engines.partitioning import CHANGES, HEALTH_SAMPLES, span_start
from engines.partitions import (
    changes_drop_before,
    changes_floor,
    events_delete_before,
    health_samples_drop_before,
    partitions_ensure,
    partitions_of,
)
from tenants import services
from tenants.models import Tenant
from tests.callbacks.support import insert_changes
from tests.conftest import Persona
from tests.factories import make_source
from tests.threads import on_own_connection


def _schema() -> str:
    return str(connection.schema_name)  # type: ignore[attr-defined]


def _partition_of(table: str, where: str, params: list[Any]) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT tableoid::regclass::text FROM {table} WHERE {where}", params)  # noqa: S608
        return sorted(str(row[0]).split(".")[-1] for row in cursor.fetchall())


def _event(event_id: str, key: str) -> Event:
    return Event(id=event_id, type="upsert", key=key, version=1, data={"k": key}, seq=None, occurred_at=None)


def _commit(source_id: int, events: list[Event], now: datetime) -> Any:
    with transaction.atomic(), connection.cursor() as cursor:
        (result,) = commit_batches(cursor, [PendingBatch(source_id=source_id, events=events)], now=now)
    return result


def _age_changes(seqs: list[int], at: datetime) -> None:
    """Move changes back in time (PostgreSQL moves the rows to the partition of their new time)."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE engines_change SET committed_at = %s WHERE seq = ANY(%s)", [at, seqs])


def test_a_tenant_has_partitions_from_now_to_a_few_spans_ahead_and_new_rows_land_in_them(in_acme: Tenant) -> None:
    # given
    now = timezone.now()
    with connection.cursor() as cursor:
        for spec in (CHANGES, HEALTH_SAMPLES):
            # then
            starts = {p.start for p in partitions_of(cursor, _schema(), spec)}
            assert {span_start(now, spec.span) + n * spec.span for n in range(spec.ahead + 1)} <= starts
    # when
    source, _ = make_source()
    changes = insert_changes(source.pk, 2)
    HealthSample.objects.create(source=source, at=now, score=90, verdict="good", mode="event")
    # then: no row in a default partition
    current = f"engines_change_p{span_start(now, CHANGES.span):%Y%m%d}"
    assert _partition_of("engines_change", "seq = ANY(%s)", [[c["seq"] for c in changes]]) == [current]
    assert _partition_of("engines_healthsample", "source_id = %s", [source.pk]) == [
        f"engines_healthsample_p{span_start(now, HEALTH_SAMPLES.span):%Y%m%d}"
    ]


def test_a_partition_made_late_takes_its_rows_out_of_the_default_partition(in_acme: Tenant) -> None:
    # given: rows of a time no partition covers yet (the maintenance was down) land in the default one
    source, _ = make_source()
    later = timezone.now() + timedelta(days=60)
    changes = insert_changes(source.pk, 3)
    seqs = [c["seq"] for c in changes]
    _age_changes(seqs, later)
    assert _partition_of("engines_change", "seq = ANY(%s)", [seqs]) == ["engines_change_default"]
    # when
    made = partitions_ensure(schema=_schema(), now=later)
    # then
    expected = f"engines_change_p{span_start(later, CHANGES.span):%Y%m%d}"
    assert expected in made
    assert _partition_of("engines_change", "seq = ANY(%s)", [seqs]) == [expected]
    assert _partition_of("engines_change_default", "true", []) == []
    with connection.cursor() as cursor:  # the partition has the parent's indexes, attached
        cursor.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND tablename = %s", [_schema(), expected]
        )
        assert cursor.fetchone()[0] == 2


def _old_changes(source_id: int, count: int, days_ago: int) -> list[int]:
    old = timezone.now() - timedelta(days=days_ago)
    partitions_ensure(schema=_schema(), now=old)
    seqs = [c["seq"] for c in insert_changes(source_id, count)]
    _age_changes(seqs, old)
    return seqs


def test_changes_past_retention_are_dropped_a_week_at_a_time_and_the_floor_rises(in_acme: Tenant) -> None:
    # given: changes of five weeks ago, two weeks ago and now
    source, _ = make_source()
    oldest = _old_changes(source.pk, 4, days_ago=35)
    older = _old_changes(source.pk, 3, days_ago=14)
    recent = [c["seq"] for c in insert_changes(source.pk, 2)]
    # when: seven days of retention
    result = changes_drop_before(schema=_schema(), cutoff=timezone.now() - timedelta(days=7), keep_after=None)
    # then: the weeks wholly past retention are gone, and the floor names the last seq gone
    assert result.floor == max(older) == changes_floor()
    assert f"engines_change_p{span_start(timezone.now() - timedelta(days=35), CHANGES.span):%Y%m%d}" in result.dropped
    assert _partition_of("engines_change", "seq = ANY(%s)", [oldest + older]) == []
    assert len(_partition_of("engines_change", "seq = ANY(%s)", [recent])) == 1
    # and a second pass changes nothing
    again = changes_drop_before(schema=_schema(), cutoff=timezone.now() - timedelta(days=7), keep_after=None)
    assert again.dropped == [] and again.floor == result.floor


def test_a_subscription_behind_keeps_the_changes_it_has_not_delivered(in_acme: Tenant) -> None:
    # given: a subscription (disabled, it may be re-enabled) that got only half of the old changes
    source, _ = make_source()
    old = _old_changes(source.pk, 4, days_ago=35)
    Subscription.objects.create(url="http://127.0.0.1:9/", cursor=old[1], status="disabled")
    floor_before = changes_floor()
    # when
    result = changes_drop_before(schema=_schema(), cutoff=timezone.now() - timedelta(days=7), keep_after=old[1])
    # then
    assert result.held_by_subscriptions
    assert changes_floor() == floor_before < old[2]
    assert len(_partition_of("engines_change", "seq = ANY(%s)", [old])) == 1


def test_the_changes_feed_answers_410_for_a_resume_from_before_the_floor(alice: Persona, in_acme: Tenant) -> None:
    # given
    source, _ = make_source()
    seqs = [c["seq"] for c in insert_changes(source.pk, 3)]
    SeqCounter.objects.filter(pk=1).update(floor=seqs[0])
    client = alice.client()
    # when
    gone = client.get(f"/api/v1/changes?after={seqs[0] - 1}")
    kept = client.get(f"/api/v1/changes?after={seqs[0]}")
    # then
    assert gone.status_code == 410
    assert gone["Content-Type"].startswith("application/problem+json")
    body = gone.json()
    assert body["status"] == 410 and body["floor"] == seqs[0]
    assert body["errors"] == [{"field": "after", "message": f"must be at least {seqs[0]}"}]
    assert kept.status_code == 200
    assert [c["seq"] for c in kept.json()["results"] if c["source"] == source.pk] == seqs[1:]


def test_events_past_retention_are_deleted_and_the_rest_still_dedupe(in_acme: Tenant) -> None:
    # given: events received 40 days ago and now
    source, _ = make_source()
    tag = uuid.uuid4().hex[:8]
    old = [_event(f"old-{tag}-{n}", f"old-{n}") for n in range(7)]
    new = [_event(f"new-{tag}-{n}", f"new-{n}") for n in range(5)]
    _commit(source.pk, old, timezone.now() - timedelta(days=40))
    _commit(source.pk, new, timezone.now())
    # when: 30 days of retention, in batches smaller than the backlog
    deleted = events_delete_before(schema=_schema(), cutoff=timezone.now() - timedelta(days=30), batch=3)
    # then
    assert deleted == len(old)
    with connection.cursor() as cursor:
        cursor.execute("SELECT event_id FROM engines_event WHERE source_id = %s ORDER BY event_id", [source.pk])
        assert [row[0] for row in cursor.fetchall()] == sorted(e.id for e in new)
    # a repeat of a kept event is still a duplicate; a repeat of a deleted one is new again (documented)
    assert _commit(source.pk, new[:2], timezone.now()).duplicates == 2
    assert _commit(source.pk, old[:1], timezone.now()).accepted == 1


def test_health_samples_are_kept_exactly_for_the_retention_period(in_acme: Tenant) -> None:
    # given
    source, _ = make_source()
    now = timezone.now()
    partitions_ensure(schema=_schema(), now=now - timedelta(hours=80))
    for hours in (79, 50, 30, 1):
        HealthSample.objects.create(
            source=source, at=now - timedelta(hours=hours), score=hours, verdict="good", mode="event"
        )
    with connection.cursor() as cursor:
        # as in a pass of its own: no foreign-key check left pending on the partitions (it would keep them)
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    # when
    dropped, deleted = health_samples_drop_before(schema=_schema(), cutoff=now - timedelta(hours=24))
    # then
    assert f"engines_healthsample_p{span_start(now - timedelta(hours=79), HEALTH_SAMPLES.span):%Y%m%d}" in dropped
    assert list(HealthSample.objects.filter(source=source).values_list("score", flat=True)) == [1]
    assert deleted >= 0


@pytest.fixture
def tenant_with_a_floor(personas: object) -> Iterator[tuple[Tenant, str]]:
    """A committed tenant of its own whose changes feed has a floor of 5."""

    def make() -> tuple[Tenant, str]:
        tenant, issued = services.tenant_create(slug=f"floor{uuid.uuid4().hex[:6]}")
        with tenant_context(tenant):
            SeqCounter.objects.filter(pk=1).update(last=9, floor=5)
        return tenant, issued.raw

    tenant, key = on_own_connection(make)
    try:
        yield tenant, key
    finally:
        on_own_connection(lambda: services.tenant_delete(tenant=Tenant.objects.get(pk=tenant.pk)))


@pytest.mark.usefixtures("close_db_threads")
@pytest.mark.django_db
async def test_a_websocket_resume_from_before_the_floor_is_closed_with_4410(
    tenant_with_a_floor: tuple[Tenant, str],
) -> None:
    # given
    _, key = tenant_with_a_floor
    headers = [(b"authorization", f"Bearer {key}".encode())]
    # when
    below = WebsocketCommunicator(application, "/ws/v1/changes?after=4", headers=headers)
    connected, _ = await below.connect()
    message = await below.receive_output(10)
    # then
    assert connected
    assert message["type"] == "websocket.close" and message["code"] == 4410
    assert "after >= 5" in message.get("reason", "")
    await below.disconnect(4410, timeout=0.2)
    # and a resume at the floor is served
    at_floor = WebsocketCommunicator(application, "/ws/v1/changes?after=5", headers=headers)
    assert (await at_floor.connect())[0]
    assert await at_floor.receive_nothing(0.5)
    await at_floor.disconnect(timeout=0.2)
