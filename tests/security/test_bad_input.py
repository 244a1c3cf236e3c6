"""Hostile input is refused at validation, never a 500; one bad batch never fails its group."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from django_tenants.utils import tenant_context

from engines.connectors.push_mapping import parse_body
from engines.ingest.commit import PendingBatch
from engines.ingest.fastpath import _commit_isolating
from engines.ingest.validation import MAX_DEPTH, BodyError, Event, decode_and_validate, split_body, validate
from engines.models import Record
from tests.conftest import Persona
from tests.factories import source_spec


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def _errors_of(body: bytes) -> list[dict[str, Any]]:
    batch = decode_and_validate(body, "application/json")
    if batch is None:
        batch = validate(split_body(body, "application/json"))
    return batch.errors


@pytest.mark.parametrize(
    ("event", "named"),
    [
        ({"id": "a\u0000b", "type": "upsert", "key": "k", "version": 1, "data": {}}, "id"),
        ({"id": "e", "type": "upsert", "key": "k\u0000", "version": 1, "data": {}}, "key"),
        ({"id": "e", "type": "upsert", "key": "k", "version": 1, "data": {"note": "x\u0000y"}}, "data.note"),
        ({"id": "e", "type": "upsert", "key": "k", "version": 1, "data": {"n\u0000": 1}}, "data"),
        ({"id": "e", "type": "upsert", "key": "k", "version": 1, "data": {"l": [1, "\u0000"]}}, "data.l[1]"),
        ({"id": "e", "type": "upsert", "key": "k", "version": 1, "data": _nested(MAX_DEPTH + 1)}, "deeper"),
    ],
)
def test_unstorable_events_are_refused_naming_index_and_field(event: dict[str, Any], named: str) -> None:
    for body in (
        json.dumps(event).encode(),
        json.dumps({"events": [{"id": "ok", "type": "heartbeat"}, event]}).encode(),
    ):
        errors = _errors_of(body)
        assert errors, body[:80]
        assert errors[-1]["index"] == (0 if body.startswith(b'{"id"') else 1)
        assert named in errors[-1]["message"]


def test_nesting_at_the_limit_is_fine() -> None:
    event = {"id": "e", "type": "upsert", "key": "k", "version": 1, "data": _nested(MAX_DEPTH)}
    assert _errors_of(json.dumps(event).encode()) == []


def test_invalid_utf8_and_absurd_nesting_are_body_errors() -> None:
    bad_utf8 = b'{"id": "e", "type": "upsert", "key": "k", "version": 1, "data": {"s": "\xff\xfe"}}'
    assert decode_and_validate(bad_utf8, "application/json") is None
    with pytest.raises(BodyError) as caught:
        split_body(bad_utf8, "application/json")
    assert caught.value.status == 400
    deep = b'{"id": "e", "type": "upsert", "key": "k", "version": 1, "data": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    assert decode_and_validate(deep, "application/json") is None
    with pytest.raises(BodyError) as caught:
        split_body(deep, "application/json")
    assert caught.value.status == 422
    for body in (bad_utf8, deep):
        with pytest.raises(BodyError):
            parse_body(body)


def test_the_native_mapping_refuses_nul_and_infinite_numbers() -> None:
    from engines.connectors.push_mapping import PushProgram
    from engines.schemas import PushMapping

    program = PushProgram(PushMapping(id="body.id", key="body.key", version="body.v", data="body.data"))
    for data in ('{"s": "a\\u0000"}', '{"n": 1e400}'):
        raw = ('{"id": "e1", "key": "k", "v": 1, "data": ' + data + "}").encode()
        mapped = program.run({}, parse_body(raw))
        assert mapped.errors and not mapped.events, data
        assert mapped.errors[0]["field"].endswith("data")
    raw = b'{"id": "e\\u0000", "key": "k", "v": 1, "data": {}}'
    mapped = program.run({}, parse_body(raw))
    assert [error["field"] for error in mapped.errors] == ["push.mapping.id"]


def test_bad_input_over_http_is_4xx_never_500(
    live_server_url: str, committed_source: tuple[int, str], personas: dict[str, Persona]
) -> None:
    source_id = committed_source[0]
    url = f"{live_server_url}/api/v1/sources/{source_id}/events"
    alice = {"Authorization": f"Bearer {personas['alice'].api_key}", "Content-Type": "application/json"}
    bodies = {
        "nul in data": b'{"id": "n1", "type": "upsert", "key": "k", "version": 1, "data": {"a": "\\u0000"}}',
        "nul in id": b'{"id": "n\\u0000", "type": "upsert", "key": "k", "version": 1, "data": {}}',
        "nul in key": b'{"id": "n2", "type": "delete", "key": "\\u0000", "version": 1}',
        "invalid utf-8": b'{"id": "n3", "type": "upsert", "key": "k", "version": 1, "data": {"a": "\xc3\x28"}}',
        "10k deep": b'{"id": "n4", "type": "upsert", "key": "k", "version": 1, "data": {"a": '
        + b"[" * 10_000
        + b"]" * 10_000
        + b"}}",
        "huge number": b'{"id": "n5", "type": "upsert", "key": "k", "version": 1, "data": {"a": 1e400}}',
        "ndjson nul": b'{"id": "n6", "type": "upsert", "key": "k", "version": 1, "data": {"\\u0000": 1}}\n',
    }
    for name, body in bodies.items():
        headers = alice | ({"Content-Type": "application/x-ndjson"} if name.startswith("ndjson") else {})
        response = httpx.post(url, content=body, headers=headers, timeout=10)
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text[:200])
        assert response.headers["content-type"] == "application/problem+json", name


async def _poisoned_traffic(url: str, api_key: str, count: int) -> list[httpx.Response]:
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(n: int) -> httpx.Response:
            data = {"n": n, "note": "bad\u0000" if n % 30 == 7 else "fine"}
            body = json.dumps({"id": f"poison-{n}", "type": "upsert", "key": f"k{n}", "version": 1, "data": data})
            return await client.post(url, content=body.encode(), headers=headers)

        return await asyncio.gather(*(one(n) for n in range(count)))


def test_a_poisoned_event_fails_only_its_own_request(
    live_server_url: str,
    committed_source: tuple[int, str],
    personas: dict[str, Persona],
    django_db_blocker: pytest.FixtureRequest,
) -> None:
    source_id = committed_source[0]
    url = f"{live_server_url}/api/v1/sources/{source_id}/events"
    responses = asyncio.run(_poisoned_traffic(url, personas["alice"].api_key, 300))
    statuses = {n: r.status_code for n, r in enumerate(responses)}
    poisoned = {n for n in statuses if n % 30 == 7}
    assert {statuses[n] for n in poisoned} == {422}
    assert {statuses[n] for n in statuses if n not in poisoned} == {202}
    with django_db_blocker.unblock(), tenant_context(personas["alice"].tenant):  # type: ignore[attr-defined]
        assert Record.objects.filter(source_id=source_id).count() == 300 - len(poisoned)


def test_a_batch_the_database_refuses_inside_a_group_fails_alone(
    committed_source: tuple[int, str], personas: dict[str, Persona], django_db_blocker: pytest.FixtureRequest
) -> None:
    """Past validation (a bug, a gap): the group retries its batches one by one."""
    source_id = committed_source[0]

    def event(n: int, key: str) -> Event:
        return Event(id=f"grp-{n}", type="upsert", key=key, version=1, data={"n": n}, seq=None, occurred_at=None)

    batches = [PendingBatch(source_id=source_id, events=[event(n, f"g{n}")]) for n in range(5)]
    batches.insert(2, PendingBatch(source_id=source_id, events=[event(99, "bad\u0000key")]))
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        results = _commit_isolating(personas["alice"].tenant.schema_name, batches)
        with tenant_context(personas["alice"].tenant):
            stored = set(Record.objects.filter(source_id=source_id).values_list("key", flat=True))
    assert [getattr(result, "status", 202) for result in results] == [202, 202, 422, 202, 202, 202]
    assert stored == {f"g{n}" for n in range(5)}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "a\u0000b"}, "name"),
        ({"config": {"poll_url": "https://up.example.com/c", "headers": {"X-Token": "a\u0000"}}}, "config"),
        ({"data_schema": {"type": 5}}, "data_schema"),
        ({"data_schema": _nested(200)}, "data_schema"),
        ({"data_schema": {"properties": {"a": {"minLength": "three"}}}}, "data_schema"),
    ],
)
def test_unstorable_or_invalid_definitions_are_422(alice: Persona, change: dict[str, Any], field: str) -> None:
    response = alice.client().post("/api/v1/sources", {**source_spec(), **change}, format="json")
    assert response.status_code == 422, response.content[:300]
    assert any(error["field"].startswith(field) or error["field"] == "body" for error in response.json()["errors"])


def test_a_valid_data_schema_is_kept_and_patching_an_invalid_one_is_422(alice: Persona) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    created = alice.client().post("/api/v1/sources", source_spec(data_schema=schema), format="json")
    assert created.status_code == 201, created.json()
    patched = alice.client().patch(
        f"/api/v1/sources/{created.json()['id']}", {"data_schema": {"type": 5}}, format="json"
    )
    assert patched.status_code == 422
    assert patched.json()["errors"][0]["field"] == "data_schema"


def test_a_nul_in_a_record_key_is_a_404(alice: Persona) -> None:
    created = alice.client().post("/api/v1/sources", source_spec(), format="json").json()
    response = alice.client().get(f"/api/v1/sources/{created['id']}/records/a%00b")
    assert response.status_code == 404
