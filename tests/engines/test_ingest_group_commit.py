"""The commit path's group shape and its shortcuts: one statement per kind for many batches, the
typed decode, the cheaper record hash, the quota taken once per group."""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import msgspec
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from beastflow.redis_client import get_redis
from engines.ingest.commit import PendingBatch, commit_batches
from engines.ingest.hashing import record_hash, record_hash_of_decoded
from engines.ingest.quota import TokenBucket
from engines.ingest.validation import Event, decode_and_validate, split_body, validate
from engines.models import Change, Record
from tests.conftest import Persona
from tests.factories import make_source


def _event(event_id: str, key: str, version: int, kind: str = "upsert") -> Event:
    data = {"v": version} if kind == "upsert" else None
    return Event(id=event_id, type=kind, key=key, version=version, data=data, seq=None, occurred_at=None)


def _commit(batches: list[PendingBatch]) -> list[Any]:
    with transaction.atomic(), connection.cursor() as cursor:
        return commit_batches(cursor, batches, now=timezone.now())


def test_an_id_sent_twice_in_one_group_is_accepted_once_then_a_duplicate(alice: Persona) -> None:
    # given
    with tenant_context(alice.tenant):
        source, _ = make_source()
        # when
        first, second = _commit(
            [
                PendingBatch(source_id=source.pk, events=[_event("e1", "k", 1)]),
                PendingBatch(source_id=source.pk, events=[_event("e1", "k", 1), _event("e2", "j", 1)]),
            ]
        )
        # then
        assert (first.accepted, first.duplicates, len(first.changes)) == (1, 0, 1)
        assert (second.accepted, second.duplicates, len(second.changes)) == (1, 1, 1)
        assert Change.objects.filter(source_id=source.pk).count() == 2


def test_a_group_over_several_sources_numbers_changes_in_batch_order(alice: Persona) -> None:
    # given
    with tenant_context(alice.tenant):
        a, _ = make_source("a")
        b, _ = make_source("b")
        # when
        results = _commit(
            [
                PendingBatch(source_id=a.pk, events=[_event("x1", "k", 1)]),
                PendingBatch(source_id=b.pk, events=[_event("y1", "k", 1), _event("y2", "k", 2)]),
                PendingBatch(source_id=a.pk, events=[_event("x2", "k", 2), _event("x3", "k", 1)]),
            ]
        )
        # then: seqs follow the batches, each record points at its last change, the stale one is no change
        seqs = [[change["seq"] for change in result.changes] for result in results]
        assert seqs[0][0] < seqs[1][0] < seqs[1][1] < seqs[2][0] and len(seqs[2]) == 1
        assert results[2].stale == 1
        records = {(r.source_id, r.key): (r.version, r.change_seq) for r in Record.objects.all()}
        assert records[(a.pk, "k")] == (2, seqs[2][0])
        assert records[(b.pk, "k")] == (2, seqs[1][1])


def test_a_delete_after_a_delete_keeps_the_records_last_change(alice: Persona) -> None:
    with tenant_context(alice.tenant):
        source, _ = make_source()
        [created] = _commit([PendingBatch(source_id=source.pk, events=[_event("e1", "k", 1)])])
        # when: a delete (a change), then a newer delete of the deleted key (no change), in one group
        deleted, again = _commit(
            [
                PendingBatch(source_id=source.pk, events=[_event("e2", "k", 2, "delete")]),
                PendingBatch(source_id=source.pk, events=[_event("e3", "k", 3, "delete")]),
            ]
        )
        # then
        assert len(deleted.changes) == 1 and again.changes == []
        record = Record.objects.get(source_id=source.pk, key="k")
        assert (record.version, record.deleted, record.change_seq) == (3, True, deleted.changes[0]["seq"])
        assert created.changes[0]["seq"] < record.change_seq


def test_a_batch_of_a_missing_source_is_told_so_and_the_others_commit(alice: Persona) -> None:
    with tenant_context(alice.tenant):
        source, _ = make_source()
        missing, present = _commit(
            [
                PendingBatch(source_id=987_654, events=[_event("m1", "k", 1)]),
                PendingBatch(source_id=source.pk, events=[_event("p1", "k", 1)]),
            ]
        )
        assert missing.source_missing and missing.accepted == 0
        assert not present.source_missing and present.accepted == 1


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.randint(-(2**70), 2**70)
    if kind == 2:  # floats across the exponents where Python and msgspec write them differently
        return rng.choice([1, -1]) * 10 ** rng.uniform(-8, 22) * rng.random()
    if kind == 3:
        return float(rng.randint(-(10**17), 10**17))
    if kind == 4:
        return "".join(rng.choice(["a", "é", "\n", '"', "\\", "\u2028", "e", "1", "0.0000", "😀"]) for _ in range(5))
    if kind in (5, 6):
        return {
            rng.choice(["b", "a", "B", "é", "aa", "10", "2"]) + str(i): _random_value(rng, depth + 1)
            for i in range(rng.randrange(4))
        }
    return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def test_the_cheaper_hash_of_decoded_json_equals_the_contracts_hash() -> None:
    rng = random.Random(7)
    for _ in range(20_000):
        # the shortcut is only for data msgspec decoded: go through JSON like a request does
        data = msgspec.json.decode(json.dumps({"d": _random_value(rng)}).encode())
        assert record_hash_of_decoded(data) == record_hash(data)


def test_the_typed_decode_gives_the_events_the_general_path_gives() -> None:
    body = json.dumps(
        {
            "events": [
                {"id": "e1", "type": "upsert", "key": "k", "version": 1, "data": {"x": 1.5e-7, "y": "é"}, "seq": 3},
                {"id": "e2", "type": "delete", "key": "k", "version": 2, "occurred_at": "2026-11-26T10:00:00Z"},
                {"id": "e3", "type": "heartbeat", "seq": 9},
            ]
        }
    ).encode()
    fast = decode_and_validate(body, "application/json")
    general = validate(split_body(body, "application/json"))
    assert fast is not None
    assert fast.events == general.events and fast.errors == general.errors == []


def test_the_typed_decode_leaves_a_badly_typed_body_to_the_general_path() -> None:
    for body in (
        b'{"events": [{"id": "e1", "type": "upsert", "key": "k", "version": "one"}]}',
        b'{"events": "nope"}',
        b'{"events": []}',
        b"[1, 2]",
        b"not json",
    ):
        assert decode_and_validate(body, "application/json") is None
    assert decode_and_validate(b'{"id": "e1", "type": "heartbeat"}', "application/x-ndjson") is None


def test_taking_a_groups_quota_at_once_decides_like_one_request_at_a_time() -> None:
    client = get_redis()
    prefix = f"test-quota-{uuid.uuid4().hex}"
    costs = [4, 4, 1, 3, 1, 20]
    try:
        together = TokenBucket(client, prefix).take_each("t", costs, rate=0.001, burst=10)
        one_by_one = [TokenBucket(client, prefix + "-single").take("t", c, rate=0.001, burst=10) for c in costs]
        assert (
            [d.allowed for d in together] == [d.allowed for d in one_by_one] == [True, True, True, False, True, False]
        )
    finally:
        client.delete(f"{prefix}:quota:t", f"{prefix}-single:quota:t")
