from __future__ import annotations

import hashlib
from typing import Any

import pytest

from simulator.dataset import Dataset
from tests.simulator.support import independent_digests


def all_snapshot(ds: Dataset, *, limit: int = 7, bucket: str | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    token = None
    while True:
        page, token = ds.snapshot_page(page_token=token, limit=limit, bucket=bucket)
        out.extend(page)
        if token is None:
            return out


def test_every_visible_mutation_gets_the_next_seq_and_a_unique_id() -> None:
    # given
    ds = Dataset(seed=1, key_space=20)
    # when
    changes = [ds.mutate_random(delete=i % 4 == 3) for i in range(50)]
    # then
    events = [c.event for c in changes]
    assert [e["seq"] for e in events if e] == list(range(1, 51))
    assert len({e["id"] for e in events if e}) == 50
    assert all(e["occurred_at"].endswith("Z") for e in events if e)


def test_versions_grow_per_key_across_deletes_and_silent_changes() -> None:
    ds = Dataset()
    ds.upsert("k", {"a": 1})
    ds.upsert("k", {"a": 2}, silent=True)
    ds.delete("k")
    change = ds.upsert("k", {"a": 3})
    assert [e["version"] for e in ds.changes(after=0)[0]] == [1, 3, 4]
    assert change.version == 4


def test_delete_event_has_no_data_and_removes_the_record() -> None:
    ds = Dataset()
    ds.upsert("k", {"a": 1})
    change = ds.delete("k")
    assert change.event is not None
    assert change.event["type"] == "delete" and "data" not in change.event
    assert ds.get("k") is None
    with pytest.raises(KeyError):
        ds.delete("k")


def test_change_feed_pages_by_after_and_says_when_more_remain() -> None:
    ds = Dataset()
    ds.seed_records(25)
    first, more = ds.changes(after=0, limit=10)
    rest, more_after = ds.changes(after=20, limit=10)
    assert [e["seq"] for e in first] == list(range(1, 11)) and more
    assert [e["seq"] for e in rest] == list(range(21, 26)) and not more_after
    assert ds.changes(after=25) == ([], False)


def test_silent_change_is_in_the_snapshot_but_not_in_the_feed() -> None:
    # given
    ds = Dataset()
    ds.upsert("order-1", {"total": 1})
    # when
    ds.upsert("order-1", {"total": 2}, silent=True)
    ds.upsert("order-2", {"total": 5}, silent=True)
    # then
    assert ds.head_seq == 1
    assert [e["key"] for e in ds.changes(after=0)[0]] == ["order-1"]
    snap = {r["key"]: r for r in all_snapshot(ds)}
    assert snap["order-1"] == {"key": "order-1", "version": 2, "data": {"total": 2}}
    assert "order-2" in snap
    assert ds.silent_changes == 2


def test_silent_delete_disappears_from_snapshot_without_an_event() -> None:
    ds = Dataset()
    ds.upsert("k", {"a": 1})
    ds.delete("k", silent=True)
    assert all_snapshot(ds) == [] and ds.head_seq == 1


def test_snapshot_pages_return_every_record_once_in_key_order() -> None:
    ds = Dataset(seed=3, key_space=500)
    ds.seed_records(123)
    items = all_snapshot(ds, limit=10)
    keys = [r["key"] for r in items]
    assert keys == sorted(keys) and len(set(keys)) == 123


def test_snapshot_paging_survives_inserts_and_deletes_between_pages() -> None:
    ds = Dataset()
    for i in range(10):
        ds.upsert(f"k{i:02d}", {"i": i})
    page, token = ds.snapshot_page(limit=5)
    ds.delete("k02")  # already returned
    ds.delete("k05")  # not yet returned
    ds.upsert("k07b", {"new": True})
    rest, end = ds.snapshot_page(page_token=token, limit=100)
    assert [r["key"] for r in page] == ["k00", "k01", "k02", "k03", "k04"]
    assert [r["key"] for r in rest] == ["k06", "k07", "k07b", "k08", "k09"]
    assert end is None


def test_bucket_digests_match_an_independent_recomputation() -> None:
    # given: a dataset with updates, deletes, silent changes and non-ASCII data
    ds = Dataset(seed=7, key_space=300)
    ds.seed_records(200)
    for i in range(150):
        ds.mutate_random(delete=i % 5 == 0, silent=i % 7 == 0)
    ds.upsert("ключ-é", {"note": "東京", "nested": {"b": 1, "a": [1, 2]}})
    # when
    digests = ds.digests()
    # then
    assert digests == independent_digests(all_snapshot(ds))


def test_empty_buckets_digest_to_sha256_of_nothing() -> None:
    digests = Dataset().digests()
    assert sorted(digests) == [f"{i:02x}" for i in range(256)]
    assert set(digests.values()) == {hashlib.sha256(b"").hexdigest()}


def test_digest_cache_follows_changes() -> None:
    ds = Dataset()
    ds.seed_records(50)
    before = ds.digests()
    change = ds.mutate_random()
    after = ds.digests()
    changed = {b for b in before if before[b] != after[b]}
    assert changed == {hashlib.sha256(change.key.encode()).hexdigest()[:2]}
    assert after == independent_digests(all_snapshot(ds))


def test_bucket_pages_hold_only_that_buckets_records() -> None:
    ds = Dataset(seed=2, key_space=2000)
    ds.seed_records(1000)
    everything = all_snapshot(ds, limit=500)
    bucket = hashlib.sha256(everything[0]["key"].encode()).hexdigest()[:2]
    expected = [r for r in everything if hashlib.sha256(r["key"].encode()).hexdigest()[:2] == bucket]
    assert all_snapshot(ds, limit=2, bucket=bucket) == expected


def test_bad_page_token_and_bucket_are_rejected() -> None:
    ds = Dataset()
    with pytest.raises(ValueError):
        ds.snapshot_page(page_token="%%%")
    with pytest.raises(ValueError):
        ds.snapshot_page(bucket="zz")
    with pytest.raises(ValueError):
        ds.snapshot_page(bucket="AB")


def test_same_seed_gives_the_same_data() -> None:
    a, b, c = Dataset(seed=5), Dataset(seed=5), Dataset(seed=6)
    for ds in (a, b, c):
        for _ in range(30):
            ds.mutate_random()
    assert all_snapshot(a) == all_snapshot(b) != all_snapshot(c)


def test_reset_starts_a_new_generation_with_fresh_event_ids() -> None:
    ds = Dataset(id_prefix="evt_x")
    ds.seed_records(3)
    old_ids = {e["id"] for e in ds.changes()[0]}
    ds.reset()
    ds.seed_records(3)
    new = ds.changes()[0]
    assert [e["seq"] for e in new] == [1, 2, 3]
    assert old_ids.isdisjoint(e["id"] for e in new)
