"""Push ingestion through the Django path (docs/contract.md §4, §5), inside a rolled-back transaction."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from engines.models import Change, Event, Record, StreamState
from engines.sources import webhook_secret
from tenants.models import Tenant
from tenants.selectors import forget_cached_keys
from tests.conftest import Persona
from tests.factories import make_source


@pytest.fixture
def source(alice: Persona) -> tuple[int, str]:
    with tenant_context(alice.tenant):
        created, secret = make_source()
    return created.pk, secret


def upsert(event_id: str, key: str, version: int, data: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": event_id, "type": "upsert", "key": key, "version": version, "data": data or {"v": version}, **extra}


def post(persona: Persona, source_id: int, body: Any, **kwargs: Any) -> Any:
    return persona.client().post(f"/api/v1/sources/{source_id}/events", body, format="json", **kwargs)


def signed(secret: str, payload: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def stored(persona: Persona, source_id: int) -> tuple[int, int, int]:
    with tenant_context(persona.tenant):
        return (
            Event.objects.filter(source_id=source_id).count(),
            Record.objects.filter(source_id=source_id).count(),
            Change.objects.filter(source_id=source_id).count(),
        )


def test_one_event_by_api_key_is_committed_before_the_202(alice: Persona, source: tuple[int, str]) -> None:
    # when
    response = post(alice, source[0], upsert("e1", "order-1", 1, {"total": 12.5}))
    # then
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "duplicates": 0}
    record = alice.client().get(f"/api/v1/sources/{source[0]}/records/order-1").json()
    assert record["version"] == 1 and record["data"] == {"total": 12.5}
    feed = alice.client().get(f"/api/v1/changes?after=0&source={source[0]}").json()["results"]
    assert [(c["event_id"], c["origin"], c["type"]) for c in feed] == [("e1", "push", "upsert")]


def test_the_record_hash_is_sha256_of_canonical_json(alice: Persona, source: tuple[int, str]) -> None:
    data = {"b": [1, 2], "a": "é"}
    post(alice, source[0], upsert("e1", "k", 1, data))
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    record = alice.client().get(f"/api/v1/sources/{source[0]}/records/k").json()
    assert record["hash"] == hashlib.sha256(canonical).hexdigest()


def test_an_envelope_and_ndjson_are_both_accepted(alice: Persona, source: tuple[int, str]) -> None:
    envelope = post(alice, source[0], {"events": [upsert("e1", "a", 1), upsert("e2", "b", 1)]})
    lines = "\n".join(json.dumps(upsert(f"n{i}", f"n{i}", 1)) for i in range(3)) + "\n"
    ndjson = alice.client().post(f"/api/v1/sources/{source[0]}/events", data=lines, content_type="application/x-ndjson")
    assert envelope.json() == {"accepted": 2, "duplicates": 0}
    assert ndjson.status_code == 202 and ndjson.json() == {"accepted": 3, "duplicates": 0}


def test_a_signed_webhook_needs_no_key(alice: Persona, source: tuple[int, str]) -> None:
    # given
    body = json.dumps(upsert("e1", "k", 1)).encode()
    # when
    response = Client().post(
        f"/api/v1/sources/{source[0]}/events",
        data=body,
        content_type="application/json",
        HTTP_X_BEASTFLOW_SIGNATURE=signed(source[1], body),
    )
    # then
    assert response.status_code == 202
    assert stored(alice, source[0])[0] == 1


@pytest.mark.parametrize(
    "signature", ["sha256=" + "0" * 64, "md5=abc", "garbage", "sha256="], ids=["wrong", "scheme", "shape", "empty"]
)
def test_a_bad_signature_is_401_and_stores_nothing(alice: Persona, source: tuple[int, str], signature: str) -> None:
    response = Client().post(
        f"/api/v1/sources/{source[0]}/events",
        data=json.dumps(upsert("e1", "k", 1)),
        content_type="application/json",
        HTTP_X_BEASTFLOW_SIGNATURE=signature,
    )
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert stored(alice, source[0]) == (0, 0, 0)


def test_a_signature_over_another_body_is_refused(alice: Persona, source: tuple[int, str]) -> None:
    signature = signed(source[1], b'{"other": "body"}')
    response = Client().post(
        f"/api/v1/sources/{source[0]}/events",
        data=json.dumps(upsert("e1", "k", 1)),
        content_type="application/json",
        HTTP_X_BEASTFLOW_SIGNATURE=signature,
    )
    assert response.status_code == 401


def test_no_key_and_no_signature_is_401(alice: Persona, source: tuple[int, str]) -> None:
    response = Client().post(f"/api/v1/sources/{source[0]}/events", data="{}", content_type="application/json")
    assert response.status_code == 401


def test_another_tenants_key_gets_404_and_stores_nothing(
    alice: Persona, charlie: Persona, source: tuple[int, str]
) -> None:
    response = post(charlie, source[0], upsert("e1", "k", 1))
    assert response.status_code == 404
    assert stored(alice, source[0]) == (0, 0, 0)


def test_an_unknown_source_is_404(alice: Persona) -> None:
    assert post(alice, 987654321, upsert("e1", "k", 1)).status_code == 404


def test_a_repeated_event_id_is_a_duplicate_not_a_change(alice: Persona, source: tuple[int, str]) -> None:
    post(alice, source[0], upsert("e1", "k", 1))
    again = post(alice, source[0], {"events": [upsert("e1", "k", 1), upsert("e2", "k", 2)]})
    assert again.json() == {"accepted": 1, "duplicates": 1}
    assert stored(alice, source[0]) == (2, 1, 2)


def test_a_stale_version_is_stored_but_changes_nothing(alice: Persona, source: tuple[int, str]) -> None:
    post(alice, source[0], upsert("e2", "k", 2, {"new": True}))
    post(alice, source[0], upsert("e1", "k", 1, {"old": True}))
    record = alice.client().get(f"/api/v1/sources/{source[0]}/records/k").json()
    assert record["version"] == 2 and record["data"] == {"new": True}
    assert stored(alice, source[0]) == (2, 1, 1)


def test_a_delete_is_a_tombstone_and_a_change(alice: Persona, source: tuple[int, str]) -> None:
    post(alice, source[0], upsert("e1", "k", 1))
    response = post(alice, source[0], {"id": "e2", "type": "delete", "key": "k", "version": 2})
    assert response.status_code == 202
    assert alice.client().get(f"/api/v1/sources/{source[0]}/records/k").status_code == 404
    assert alice.client().get(f"/api/v1/sources/{source[0]}/records").json()["results"] == []
    feed = alice.client().get(f"/api/v1/changes?source={source[0]}").json()["results"]
    assert [(c["type"], c["version"], c["data"]) for c in feed] == [("upsert", 1, {"v": 1}), ("delete", 2, None)]
    # an older upsert arriving late does not resurrect it
    post(alice, source[0], upsert("e0", "k", 1))
    assert alice.client().get(f"/api/v1/sources/{source[0]}/records/k").status_code == 404


def test_a_heartbeat_updates_signals_and_stores_no_record(alice: Persona, source: tuple[int, str]) -> None:
    response = post(alice, source[0], {"id": "hb1", "type": "heartbeat", "seq": 42})
    assert response.json() == {"accepted": 1, "duplicates": 0}
    with tenant_context(alice.tenant):
        state = StreamState.objects.get(source_id=source[0])
        assert state.upstream_seq == 42 and state.last_heartbeat_at is not None
    assert stored(alice, source[0]) == (0, 0, 0)


def test_seq_gaps_and_late_arrivals_are_tracked(alice: Persona, source: tuple[int, str]) -> None:
    post(alice, source[0], {"events": [upsert("e1", "a", 1, seq=1), upsert("e2", "b", 1, seq=2)]})
    post(alice, source[0], upsert("e5", "c", 1, seq=5))
    with tenant_context(alice.tenant):
        state = StreamState.objects.get(source_id=source[0])
        assert (state.contiguous_seq, state.highest_seq, state.pending_seqs) == (2, 5, [5])
    post(alice, source[0], {"events": [upsert("e3", "d", 1, seq=3), upsert("e4", "e", 1, seq=4)]})
    with tenant_context(alice.tenant):
        state = StreamState.objects.get(source_id=source[0])
        assert (state.contiguous_seq, state.pending_seqs) == (5, [])


BAD_BATCHES = {
    "wrong type of version": ([upsert("e1", "k", 1) | {"version": "7"}], 0),
    "missing key": ([{"id": "e1", "type": "upsert", "version": 1, "data": {}}], 0),
    "missing data": ([{"id": "e1", "type": "upsert", "key": "k", "version": 1}], 0),
    "missing id": ([{"type": "upsert", "key": "k", "version": 1, "data": {}}], 0),
    "unknown type": ([upsert("e1", "k", 1) | {"type": "merge"}], 0),
    "empty id": ([upsert("", "k", 1)], 0),
    "negative version": ([upsert("e1", "k", -1)], 0),
    "data not an object": ([upsert("e1", "k", 1) | {"data": [1, 2]}], 0),
    "bad timestamp": ([upsert("e1", "k", 1, occurred_at="yesterday")], 0),
    "not an object": (["just a string"], 0),
    "duplicate id inside the batch": ([upsert("e1", "k", 1), upsert("e1", "j", 1)], 1),
    "one bad among good": ([upsert("e1", "a", 1), upsert("e2", "b", 1), {"id": "e3", "type": "delete"}], 2),
}


@pytest.mark.parametrize("case", list(BAD_BATCHES))
def test_a_batch_with_an_invalid_event_is_refused_whole(alice: Persona, source: tuple[int, str], case: str) -> None:
    events, bad_index = BAD_BATCHES[case]
    response = post(alice, source[0], {"events": events})
    assert response.status_code == 422, response.json()
    assert response["Content-Type"] == "application/problem+json"
    assert bad_index in {error["index"] for error in response.json()["errors"]}
    assert stored(alice, source[0]) == (0, 0, 0)


def test_malformed_json_is_400_and_counted_as_a_push_error(alice: Persona, source: tuple[int, str]) -> None:
    response = alice.client().post(
        f"/api/v1/sources/{source[0]}/events", data=b"{nope", content_type="application/json"
    )
    assert response.status_code == 400
    with tenant_context(alice.tenant):
        assert StreamState.objects.get(source_id=source[0]).push_errors_total == 1
    assert stored(alice, source[0]) == (0, 0, 0)


def test_an_empty_batch_is_422(alice: Persona, source: tuple[int, str]) -> None:
    assert post(alice, source[0], {"events": []}).status_code == 422


def test_more_than_1000_events_is_413(alice: Persona, source: tuple[int, str]) -> None:
    response = post(alice, source[0], {"events": [upsert(f"e{i}", f"k{i}", 1) for i in range(1001)]})
    assert response.status_code == 413
    assert stored(alice, source[0]) == (0, 0, 0)


def test_a_body_over_the_limit_is_413(alice: Persona, source: tuple[int, str]) -> None:
    huge = {"events": [upsert("e1", "k", 1, {"blob": "x" * (9 * 1024 * 1024)})]}
    response = post(alice, source[0], huge)
    assert response.status_code == 413
    assert stored(alice, source[0]) == (0, 0, 0)


def test_data_must_match_the_sources_json_schema(alice: Persona) -> None:
    with tenant_context(alice.tenant):
        created, _ = make_source(
            "typed", data_schema={"type": "object", "required": ["total"], "properties": {"total": {"type": "number"}}}
        )
    good = post(alice, created.pk, upsert("e1", "k", 1, {"total": 3}))
    bad = post(
        alice, created.pk, {"events": [upsert("e2", "k", 2, {"total": 4}), upsert("e3", "j", 1, {"total": "x"})]}
    )
    assert good.status_code == 202
    assert bad.status_code == 422
    assert bad.json()["errors"] == [
        {"index": 1, "message": "data does not match the source's schema: total: 'x' is not of type 'number'"}
    ]


def test_over_the_quota_is_429_with_retry_after(alice: Persona) -> None:
    # given: a tenant allowed 5 events/s with a burst of 10
    Tenant.objects.filter(pk=alice.tenant.pk).update(ingest_rate_per_s=5, ingest_burst=10)
    forget_cached_keys()  # quotas are read with the key, cached for a few seconds
    with tenant_context(alice.tenant):
        created, _ = make_source("quota-limited")
    from engines.ingest.service import _bucket

    _bucket.cache_clear()
    from beastflow.redis_client import get_redis, key

    get_redis().delete(key("quota", "acme"))
    try:
        # when
        first = post(alice, created.pk, {"events": [upsert(f"e{i}", f"k{i}", 1) for i in range(8)]})
        second = post(alice, created.pk, {"events": [upsert(f"f{i}", f"k{i}", 2) for i in range(8)]})
        # then
        assert first.status_code == 202
        assert second.status_code == 429
        assert int(second["Retry-After"]) >= 1
        with tenant_context(alice.tenant):
            assert Event.objects.filter(source_id=created.pk).count() == 8
    finally:
        get_redis().delete(key("quota", "acme"))
        forget_cached_keys()


def test_the_webhook_secret_verifies_what_the_api_returned(alice: Persona, source: tuple[int, str]) -> None:
    with tenant_context(alice.tenant):
        from engines.models import Source

        assert webhook_secret(Source.objects.get(pk=source[0])) == source[1]
