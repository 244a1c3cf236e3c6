"""Ingest without Redis: a real Redis stopped under the real web processes, then started again.

Both front doors keep answering 202 and committing (the quota falls back
to the per-process limiter, publishes and wakes are dropped and counted),
/readyz says degraded and names Redis, and once Redis is back a websocket
follower that stayed connected through the outage receives every change.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from django_tenants.utils import tenant_context

from engines.models import Change, Event
from tests.conftest import Persona
from tests.reliability.support import ThrowawayRedis, wait_for, web_server

pytestmark = pytest.mark.e2e


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _event(event_id: str, n: int) -> dict[str, object]:
    return {"id": event_id, "type": "upsert", "key": event_id, "version": 1, "data": {"n": n}}


def _post(url: str, source_id: int, api_key: str, event_id: str, n: int) -> httpx.Response:
    return httpx.post(
        f"{url}/api/v1/sources/{source_id}/events",
        json=_event(event_id, n),
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=10,
    )


async def _follow(url: str, api_key: str, source_id: int, seen: list[str], connected: asyncio.Event) -> None:
    ws_url = url.replace("http://", "ws://") + f"/ws/v1/changes?after=0&source={source_id}"
    async with websockets.connect(ws_url, additional_headers={"Authorization": f"Bearer {api_key}"}) as ws:
        connected.set()
        async for frame in ws:
            seen.append(json.loads(frame)["event_id"])


def test_ingest_goes_on_without_redis_and_a_follower_catches_up_when_it_returns(
    throwaway_redis: ThrowawayRedis,
    committed_source: tuple[int, str],
    personas: dict[str, Persona],
    django_db_blocker: pytest.FixtureRequest,
) -> None:
    # given: both front doors on a Redis of their own, and a follower connected while it is up
    source_id = committed_source[0]
    alice = personas["alice"]
    env = {"REDIS_URL": throwaway_redis.url, "CELERY_BROKER_URL": throwaway_redis.url}
    with web_server(env) as fast, web_server(env, wsgi=True) as django_view:
        seen: list[str] = []

        async def scenario() -> dict[str, float]:
            connected = asyncio.Event()
            follower = asyncio.create_task(_follow(fast, alice.api_key, source_id, seen, connected))
            await asyncio.wait_for(connected.wait(), 10)
            timings = await asyncio.to_thread(
                _outage, throwaway_redis, fast, django_view, source_id, alice.api_key, seen
            )
            follower.cancel()
            return timings

        timings = asyncio.run(scenario())

    # then: everything accepted during the outage is stored, once
    with django_db_blocker.unblock(), tenant_context(alice.tenant):  # type: ignore[attr-defined]
        stored = set(Event.objects.filter(source_id=source_id).values_list("event_id", flat=True))
        changes = Change.objects.filter(source_id=source_id).count()
    expected = {"before"} | {f"fast-{n}" for n in range(20)} | {f"view-{n}" for n in range(20)}
    assert stored == expected
    assert changes == len(expected)
    # and the follower got every change exactly once, in the order they were committed
    assert sorted(seen) == sorted(expected)
    print(f"redis down: {timings}")


def _outage(
    redis_server: ThrowawayRedis, fast: str, django_view: str, source_id: int, api_key: str, seen: list[str]
) -> dict[str, float]:
    assert _post(fast, source_id, api_key, "before", 0).status_code == 202
    wait_for(lambda: "before" in seen, 10, "the follower sees the change made while Redis was up")

    # when: Redis goes away
    started = time.monotonic()
    redis_server.stop()
    stopped = time.monotonic() - started
    fast_answers = [_post(fast, source_id, api_key, f"fast-{n}", n) for n in range(20)]
    view_answers = [_post(django_view, source_id, api_key, f"view-{n}", n) for n in range(20)]
    slowest = {
        "fast path": max(r.elapsed.total_seconds() for r in fast_answers),
        "django view": max(r.elapsed.total_seconds() for r in view_answers),
    }

    # then: both front doors accepted every push
    assert [r.status_code for r in fast_answers] == [202] * 20, fast_answers[0].text
    assert [r.status_code for r in view_answers] == [202] * 20, view_answers[0].text
    ready = httpx.get(f"{fast}/readyz?only=database,redis", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "degraded" and ready.json()["degraded"] == ["redis"]
    assert httpx.get(f"{fast}/healthz", timeout=5).status_code == 200
    # the API still reads and writes (what it would queue is done by the sweeps later, or it says 503)
    auth = {"Authorization": f"Bearer {api_key}"}
    assert httpx.get(f"{fast}/api/v1/sources", headers=auth, timeout=10).status_code == 200
    created = httpx.post(
        f"{fast}/api/v1/sources",
        json={
            "name": f"made-without-redis-{time.time_ns()}",
            "connector": "http",
            "config": {"poll_url": "http://127.0.0.1:9/x"},
        },
        headers=auth,
        timeout=10,
    )
    assert created.status_code in (201, 503), created.text
    # the changes feed has them already (it reads PostgreSQL)
    feed = httpx.get(
        f"{fast}/api/v1/changes?after=0&source={source_id}&limit=100",
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=10,
    )
    assert feed.status_code == 200 and len(feed.json()["results"]) == 41

    # when: Redis comes back
    back = time.monotonic()
    redis_server.start()
    wait_for(lambda: len(seen) >= 41, 30, "the follower catches up after Redis returns")
    caught_up = time.monotonic() - back
    ready = httpx.get(f"{fast}/readyz?only=database,redis", timeout=10)
    assert ready.json()["status"] == "ready", ready.text
    if created.status_code == 201:  # committed: other tests of this tenant must not see it
        deleted = httpx.delete(f"{fast}/api/v1/sources/{created.json()['id']}", headers=auth, timeout=10)
        assert deleted.status_code == 204, deleted.text
    return {
        "redis stopped in s": round(stopped, 3),
        **{f"slowest push, {door}, s": round(took, 3) for door, took in slowest.items()},
        "follower caught up after s": round(caught_up, 3),
    }
