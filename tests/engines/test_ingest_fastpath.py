"""The raw ASGI ingest path of the real server (uvicorn), with group commit."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import httpx
import pytest
from django.db import connections
from django_tenants.utils import tenant_context

from engines.ingest import service, steps
from engines.models import Change, Record
from tenants.selectors import CacheMiss, forget_cached_keys
from tests.conftest import Persona


def _signed(secret: str, body: bytes) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-BeastFlow-Signature": f"sha256={digest}", "Content-Type": "application/json"}


async def _post_many(url: str, secret: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(n: int) -> httpx.Response:
            body = json.dumps({"id": f"conc-{n}", "type": "upsert", "key": f"k{n % 7}", "version": n, "data": {"n": n}})
            return await client.post(url, content=body.encode(), headers=_signed(secret, body.encode()))

        return await asyncio.gather(*(one(n) for n in range(count)))


def test_concurrent_signed_webhooks_are_each_acknowledged_after_one_shared_commit(
    live_server_url: str,
    committed_source: tuple[int, str],
    personas: dict[str, Persona],
    django_db_blocker: pytest.FixtureRequest,
) -> None:
    # given
    source_id, secret = committed_source
    url = f"{live_server_url}/api/v1/sources/{source_id}/events"
    # when
    responses = asyncio.run(_post_many(url, secret, 60))
    # then
    assert [r.status_code for r in responses] == [202] * 60
    assert all(r.json() == {"accepted": 1, "duplicates": 0} for r in responses)
    with django_db_blocker.unblock(), tenant_context(personas["alice"].tenant):  # type: ignore[attr-defined]
        records = {r.key: r.version for r in Record.objects.filter(source_id=source_id)}
        seqs = list(Change.objects.filter(source_id=source_id).order_by("seq").values_list("seq", flat=True))
    # every key ends at its highest version, whatever order the requests committed in
    assert records == {f"k{k}": max(n for n in range(60) if n % 7 == k) for k in range(7)}
    assert seqs == sorted(set(seqs))


def test_the_fast_path_answers_problem_json_like_the_django_path(
    live_server_url: str, committed_source: tuple[int, str], personas: dict[str, Persona]
) -> None:
    source_id = committed_source[0]
    url = f"{live_server_url}/api/v1/sources/{source_id}/events"
    alice = {"Authorization": f"Bearer {personas['alice'].api_key}"}
    charlie = {"Authorization": f"Bearer {personas['charlie'].api_key}"}
    event = {"id": "x1", "type": "upsert", "key": "k", "version": 1, "data": {}}
    cases = {
        "no credentials": (httpx.post(url, json=event), 401),
        "unknown key": (httpx.post(url, json=event, headers={"Authorization": "Bearer bf_nope"}), 401),
        "bad signature": (httpx.post(url, json=event, headers={"X-BeastFlow-Signature": "sha256=00"}), 401),
        "other tenant": (httpx.post(url, json=event, headers=charlie), 404),
        "invalid event": (httpx.post(url, json={"id": "x2", "type": "upsert"}, headers=alice), 422),
        "not json": (httpx.post(url, content=b"{", headers=alice), 400),
        "too big": (httpx.post(url, content=b"x" * (9 * 1024 * 1024), headers=alice), 413),
    }
    for name, (response, status) in cases.items():
        assert response.status_code == status, name
        assert response.headers["content-type"] == "application/problem+json", name
        assert response.json()["status"] == status, name
        assert response.headers["x-request-id"], name
    ok = httpx.post(url, json=event, headers=alice | {"X-Request-ID": "trace-me-1"})
    assert ok.status_code == 202
    assert ok.headers["x-request-id"] == "trace-me-1"


def test_a_cache_miss_on_the_event_loop_makes_no_database_connection_object(
    committed_source: tuple[int, str], personas: dict[str, Persona], django_db_blocker: pytest.FixtureRequest
) -> None:
    # given: cold caches, a source of alice's and her key
    source_id = committed_source[0]
    schema = personas["alice"].tenant.schema_name
    forget_cached_keys()
    service.source_cache.forget(schema, source_id)
    headers = {"authorization": f"Bearer {personas['alice'].api_key}", "content-type": "application/json"}
    body = json.dumps({"id": "miss-1", "type": "upsert", "key": "k", "version": 1, "data": {}}).encode()

    async def on_the_loop() -> tuple[list[object], list[object]]:
        before = connections.all(initialized_only=True)
        with pytest.raises(CacheMiss):
            steps.admit(source_id, headers, body, cached_only=True)
        return before, connections.all(initialized_only=True)

    # when: the fast path's try on its event loop
    before, after = asyncio.run(on_the_loop())
    # then: no connection object was made for the task (it would be cyclic garbage once the task ends)
    assert after == before
    # and: run in a thread as the door then does, it is admitted, after which the loop needs no thread
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        _, taken = steps.admit(source_id, headers, body)

    async def again() -> object:
        return steps.admit(source_id, headers, body, cached_only=True)[1]

    assert asyncio.run(again()) == taken
