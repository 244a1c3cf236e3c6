"""GET /api/v1/capacity and GET /api/v1/platform/capacity: measurements, recommendations, errors, isolation.

Ingest is measured by the recorder (observability/ingest_capacity.py): these
tests add to its tallies, or push through the ASGI application, and flush
them as the web's flusher does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from beastflow.redis_client import get_redis, key
from callbacks.models import Delivery, DeliveryStatus, Subscription
from engines.models import PollRun, PollStatus, PollTrigger
from observability import ingest_capacity
from tenants.models import Tenant
from tests.conftest import Persona
from tests.factories import make_source


@pytest.fixture(autouse=True)
def _no_ingest_measured_yet() -> Iterator[None]:
    """The per-minute hashes outlive a test's transaction: each test starts without any."""

    def clear() -> None:
        client = get_redis()
        for name in client.scan_iter(match=key("cap", "*"), count=1000):
            client.delete(name)
        ingest_capacity.tallies.take()

    clear()
    yield
    clear()


def _pushed(source_id: int, *, requests: int, events_each: int, seconds: float, status: int = 202) -> None:
    """What the recorder tallies for `requests` answered ingest requests, flushed a minute ago (a whole minute)."""
    for _ in range(requests):
        ingest_capacity.tallies.add(source_id, seconds, status, events_each if status < 300 else 0)
    ingest_capacity.flush(now=time.time() - 60)


def _polls(persona: Persona, durations_s: list[float], *, failed: int = 0) -> int:
    with tenant_context(persona.tenant):
        source, _ = make_source("polled")
        now = timezone.now()
        for n, duration in enumerate(durations_s):
            started = now - timedelta(seconds=60 + n)
            PollRun.objects.create(
                source=source,
                trigger=PollTrigger.SCHEDULE,
                status=PollStatus.FAILED if n < failed else PollStatus.SUCCEEDED,
                started_at=started,
                finished_at=started + timedelta(seconds=duration),
                events=3,
            )
        return int(source.pk)


def test_a_tenant_sees_its_ingest_poll_and_callback_percentiles_and_throughput(alice: Persona) -> None:
    # given: 100 ingest requests of 10 events (90 fast, 10 slow), 20 polls, 10 deliveries
    with tenant_context(alice.tenant):
        source, _ = make_source("pushed")
    _pushed(source.pk, requests=90, events_each=10, seconds=0.004)
    _pushed(source.pk, requests=10, events_each=10, seconds=0.2)
    _polls(alice, [0.5] * 19 + [8.0])
    with tenant_context(alice.tenant):
        sub = Subscription.objects.create(url="http://127.0.0.1:9/hook", secret_encrypted="x")
        for n in range(10):
            Delivery.objects.create(
                subscription=sub,
                first_seq=n,
                last_seq=n,
                count=5,
                attempt=1,
                status=DeliveryStatus.SUCCEEDED,
                duration_ms=30.0 if n < 9 else 900.0,
            )
    # when
    response = alice.client().get("/api/v1/capacity")
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["tenant"] == "acme" and body["window"] == "15m"
    ingest = body["ingest"]
    assert ingest["requests"] == 100 and ingest["events"] == 1000
    assert ingest["peak_events_per_s"] == pytest.approx(1000 / 60, rel=0.01)
    assert ingest["latency"]["p50_ms"] == pytest.approx(4.0, rel=0.1)
    assert ingest["latency"]["p95_ms"] == pytest.approx(200.0, rel=0.1)
    assert ingest["quota_events_per_s"] == alice.tenant.ingest_rate_per_s and 0 < ingest["quota_used_pct"] < 1
    polls = body["polls"]
    assert polls["runs"] == 20 and polls["failed"] == 0 and polls["events"] == 60
    assert polls["latency"]["p50_ms"] == pytest.approx(500.0) and polls["latency"]["p99_ms"] > 5000
    callbacks = body["callbacks"]
    assert callbacks["deliveries"] == 10 and callbacks["changes_per_s"] == pytest.approx(50 / 900, rel=0.01)
    assert callbacks["latency"]["p50_ms"] == pytest.approx(30.0)
    assert body["sources"]["count"] >= 2 and body["sources"]["max"] == alice.tenant.max_sources
    assert body["recommendations"] == []


def test_a_tenant_near_its_ingest_quota_is_told_in_plain_words(alice: Persona) -> None:
    # given: a quota of 10 events/s and a minute at 9.5 events/s
    Tenant.objects.filter(pk=alice.tenant.pk).update(ingest_rate_per_s=10)
    with tenant_context(alice.tenant):
        source, _ = make_source("busy")
    _pushed(source.pk, requests=57, events_each=10, seconds=0.003)
    _pushed(source.pk, requests=4, events_each=0, seconds=0.001, status=429)
    # when
    body = alice.client().get("/api/v1/capacity?window=1h").json()
    # then
    assert body["window"] == "1h" and body["ingest"]["headroom_pct"] == 5.0
    messages = {advice["code"]: advice for advice in body["recommendations"]}
    assert messages["ingest_quota"]["severity"] == "warning"
    assert messages["ingest_quota"]["message"].startswith("tenant acme at 95% of its ingest quota")
    assert body["ingest"]["throttled"] == 4 and "ingest_throttled" in messages


def test_failing_polls_are_a_recommendation(alice: Persona) -> None:
    _polls(alice, [1.0] * 10, failed=5)
    body = alice.client().get("/api/v1/capacity").json()
    assert body["polls"]["error_pct"] == 50.0
    assert [advice["code"] for advice in body["recommendations"]] == ["polls_failing"]


def test_another_tenants_measurements_never_show_in_a_tenants_capacity(alice: Persona, charlie: Persona) -> None:
    # given: alice's tenant ingested and polled
    with tenant_context(alice.tenant):
        source, _ = make_source("pushed")
    _pushed(source.pk, requests=5, events_each=2, seconds=0.01)
    _polls(alice, [1.0] * 3)
    # when
    body = charlie.client().get("/api/v1/capacity").json()
    # then
    assert body["tenant"] == "globex"
    assert body["ingest"]["requests"] == 0 and body["ingest"]["latency"]["p50_ms"] is None
    assert body["polls"]["runs"] == 0
    assert alice.client().get("/api/v1/capacity").json()["ingest"]["requests"] == 5


def test_an_unknown_window_is_a_problem_naming_the_field(alice: Persona) -> None:
    response = alice.client().get("/api/v1/capacity?window=3d")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/problem+json")
    assert [error["field"] for error in response.json()["errors"]] == ["window"]


def test_capacity_needs_an_api_key() -> None:
    response = Client().get("/api/v1/capacity")
    assert response.status_code == 401


def test_the_platform_capacity_is_for_staff_only(alice: Persona, charlie: Persona) -> None:
    # given
    staff = User.objects.create_user("sam-capacity", password="x", is_staff=True)
    tenant_user = User.objects.create_user("alice-capacity", password="x")
    with tenant_context(alice.tenant):
        source, _ = make_source("pushed")
    _pushed(source.pk, requests=3, events_each=1, seconds=0.01)
    signed_in = Client()
    signed_in.force_login(staff)
    not_staff = Client()
    not_staff.force_login(tenant_user)
    # when
    response = signed_in.get("/api/v1/platform/capacity")
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    tenants = {row["tenant"]: row for row in body["tenants"]}
    assert {"acme", "globex"} <= set(tenants) and tenants["acme"]["ingest"]["requests"] == 3
    assert {queue["queue"] for queue in body["queues"]} >= {"monitor", "polls", "callbacks"}
    assert body["monitor"]["lag_s"] is not None
    # a tenant's API key or a user without staff rights gets nothing
    assert alice.client().get("/api/v1/platform/capacity").status_code == 403
    assert not_staff.get("/api/v1/platform/capacity").status_code == 403
    assert Client().get("/api/v1/platform/capacity").status_code == 403


def test_pushes_through_the_asgi_application_are_measured_per_tenant(
    committed_source: tuple[int, str], personas: dict[str, Persona], django_db_blocker: Any
) -> None:
    """The recorder in front of the real fast path (beastflow.asgi), flushed as the web's flusher does."""
    from beastflow.asgi import application

    # given
    source_id, _ = committed_source
    alice, charlie = personas["alice"], personas["charlie"]

    async def push_then_read() -> tuple[list[int], dict[str, httpx.Response], dict[str, httpx.Response]]:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:

            async def read() -> dict[str, httpx.Response]:
                await asyncio.to_thread(ingest_capacity.flush)
                return {
                    who.name: await client.get("/api/v1/capacity", headers={"Authorization": f"Bearer {who.api_key}"})
                    for who in (alice, charlie)
                }

            # What the tenants' windows hold already: pushes of earlier tests in this session's
            # Redis namespace fall in the same window, so what this test adds is the difference.
            before = await read()
            statuses = []
            for n in range(5):
                events = [
                    {"id": f"cap-{n}-{i}", "type": "upsert", "key": f"k{i}", "version": n + 1, "data": {}}
                    for i in range(4)
                ]
                answer = await client.post(
                    f"/api/v1/sources/{source_id}/events",
                    json={"events": events},
                    headers={"Authorization": f"Bearer {alice.api_key}"},
                )
                statuses.append(answer.status_code)
            return statuses, before, await read()

    # when
    with django_db_blocker.unblock():
        statuses, before, after = asyncio.run(push_then_read())
    # then
    assert statuses == [202] * 5
    assert after[alice.name].status_code == 200, after[alice.name].text

    def added(who: Persona, field: str) -> int:
        return int(after[who.name].json()["ingest"][field]) - int(before[who.name].json()["ingest"][field])

    assert (added(alice, "requests"), added(alice, "events"), added(alice, "failed")) == (5, 20, 0)
    assert after[alice.name].json()["ingest"]["latency"]["p50_ms"] > 0
    assert added(charlie, "requests") == 0


def test_each_observability_tick_adds_a_sample_of_every_queue_to_the_trend(db: None) -> None:
    from observability.capacity import platform_facts, queue_history
    from observability.tasks import observability_tick_task

    # when: three ticks, ten seconds apart
    started = time.time()
    for n in range(3):
        capacity_sample_at(started + 10 * n)
    observability_tick_task()
    # then
    history = queue_history(since=started - 1)
    # (a beat started by an end-to-end test of the same session may add its own samples meanwhile)
    stamps = {round(float(sample["t"]), 3) for sample in history}
    assert {round(started + 10 * n, 3) for n in range(3)} <= stamps and len(history) >= 4
    assert all("monitor" in sample["queues"] for sample in history)
    facts = platform_facts()
    monitor_queue = next(queue for queue in facts.queues if queue.name == "monitor")
    assert len(monitor_queue.samples) >= 4 and facts.monitor_lag_s is not None


def capacity_sample_at(at: float) -> None:
    from observability.capacity import queues_sample

    queues_sample(at)


def test_the_console_platform_view_shows_capacity_and_its_recommendations(alice: Persona) -> None:
    # given: acme at 95% of a 10 events/s quota
    Tenant.objects.filter(pk=alice.tenant.pk).update(ingest_rate_per_s=10)
    with tenant_context(alice.tenant):
        source, _ = make_source("busy")
    _pushed(source.pk, requests=57, events_each=10, seconds=0.003)
    staff = User.objects.create_user("sam-platform", password="x", is_staff=True)
    client = Client()
    client.force_login(staff)
    # when
    page = client.get("/platform/").content.decode()
    # then
    assert 'id="capacity"' in page
    assert "tenant acme at 95% of its ingest quota" in page
    assert "Headroom to /readyz" in page


def test_the_scrape_time_gauges_hold_each_tenants_last_minute_against_its_quota(alice: Persona) -> None:
    from observability.capacity_metrics import TenantIngestCollector

    # given: 1,200 events in the last whole minute for acme
    with tenant_context(alice.tenant):
        source, _ = make_source("scraped")
    for _ in range(12):
        ingest_capacity.tallies.add(source.pk, 0.002, 202, 100)
    ingest_capacity.flush(now=(int(time.time() // 60) - 1) * 60 + 1)
    # when
    samples = {
        (sample.name, sample.labels["tenant"]): sample.value
        for family in TenantIngestCollector().collect()
        for sample in family.samples
    }
    # then
    assert samples[("beastflow_tenant_ingest_events_per_second", "acme")] == 20.0
    assert samples[("beastflow_tenant_ingest_quota_events_per_second", "acme")] == alice.tenant.ingest_rate_per_s
    assert samples[("beastflow_tenant_ingest_events_per_second", "globex")] == 0.0
