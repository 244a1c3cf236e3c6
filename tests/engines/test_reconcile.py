"""The ReconciliationEngine against the real simulator, PostgreSQL and Redis.

Runs execute in-process inside the test's rolled-back transaction (each
batch of corrections commits as a savepoint); the queued tasks never leave
it. tests/engines/test_reconcile_live.py covers the worker and concurrent pushes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from beastflow.redis_client import get_redis
from engines.connectors.http import UpstreamError, fetch_digests, fetch_snapshot_page
from engines.models import Change, ModeSwitch, ReconcileStatus, ReconcileTrigger, ReconciliationRun, Record, Source
from engines.polling import breaker_key
from engines.reconcile import diff, store
from engines.reconcile.engine import Tuning, reconcile_execute
from engines.reconcile.runs import STALE_AFTER_S, reconcile_request, reconciles_claim_due
from engines.schemas import HttpConnectorConfig
from healing.models import FailureRecord, FailureStatus, HealingAction, HealingStatus
from healing.services import healing_action_approve, healing_action_reject
from simulator.runner import SimulatorHandle, start_in_thread
from tests.engines.reconcile_support import (
    config_for,
    data,
    local_state,
    mirror,
    push,
    run_now,
    source_on,
    upstream_state,
    upstream_without_digests,
)
from tests.simulator.support import independent_digests, wait_for


@pytest.fixture
def upstream() -> Iterator[SimulatorHandle]:
    with start_in_thread(key_space=100_000) as handle:
        host = f"http://127.0.0.1:{handle.port}"
        get_redis().delete(breaker_key(host))
        yield handle


def _drift(upstream: SimulatorHandle, *, changed: int = 0, deleted: int = 0, added: int = 0) -> dict[str, list[str]]:
    """Silent upstream changes: the snapshot shows them, the feed and pushes never do."""
    keys = [r.key for r in upstream.dataset.records()]
    made: dict[str, list[str]] = {"changed": keys[:changed], "deleted": keys[changed : changed + deleted]}
    for n, key in enumerate(made["changed"]):
        upstream.dataset.upsert(key, data(1000 + n), silent=True)
    for key in made["deleted"]:
        upstream.dataset.delete(key, silent=True)
    made["added"] = [f"new-{n:03d}" for n in range(added)]
    for n, key in enumerate(made["added"]):
        upstream.dataset.upsert(key, data(2000 + n), silent=True)
    return made


def _reconcile_changes(source: Source) -> list[Change]:
    return list(Change.objects.filter(source_id=source.pk, origin="reconcile").order_by("seq"))


# -- digests ---------------------------------------------------------------------


def test_local_bucket_digests_equal_the_upstreams_for_the_same_records(
    upstream: SimulatorHandle, in_acme: object
) -> None:
    # given: keys that trip naive SQL (backslashes, non-ASCII, quotes) and a deleted one
    upstream.dataset.seed_records(300)
    for key in ("back\\slash", "ключ-é", "東京", "it's", "x" * 512):
        upstream.dataset.upsert(key, {"note": key[:20], "nested": {"b": 1, "a": [1, 2.5]}})
    source = source_on(upstream.base_url)
    mirror(source.pk, upstream.dataset)
    push(source.pk, [{"id": "gone", "type": "delete", "key": "rec-000001", "version": 99}])
    upstream.dataset.delete("rec-000001")
    # when
    local = store.local_buckets(store.raw_cursor(), source.pk)
    # then
    expected = upstream.dataset.digests()
    assert {b: local[b].digest if b in local else diff.EMPTY_DIGEST for b in diff.BUCKETS} == expected
    assert sum(state.count for state in local.values()) == len(upstream.dataset)
    parent = diff.bucket_of("back\\slash")
    children = store.local_buckets(store.raw_cursor(), source.pk, parents=[parent])
    upstream_children = upstream.dataset.digests(parent)
    assert {c: children[c].digest for c in children} == {
        c: d for c, d in upstream_children.items() if d != diff.EMPTY_DIGEST
    }


def test_the_simulator_serves_sub_bucket_digests_and_pages_as_the_contract_extension_says(
    upstream: SimulatorHandle,
) -> None:
    # given
    upstream.dataset.seed_records(3000)
    config = HttpConnectorConfig.model_validate(config_for(upstream.base_url))
    bucket = diff.bucket_of("rec-000042")
    # when
    children = fetch_digests(config, bucket=bucket)
    sub_bucket = diff.bucket_of("rec-000042", 4)
    page = fetch_snapshot_page(config, page_token=None, limit=1000, bucket=sub_bucket)
    # then: what an independent recomputation over the whole snapshot says
    everything = [
        {"key": r.key, "version": r.version, "data": r.data}
        for r in upstream.dataset.records()
        if diff.bucket_of(r.key) == bucket
    ]
    by_child: dict[str, list[dict[str, object]]] = {}
    for record in everything:
        by_child.setdefault(diff.bucket_of(str(record["key"]), 4), []).append(record)
    assert sorted(children) == diff.children(bucket)
    for child, digest in children.items():
        expected = independent_digests(by_child.get(child, []))[bucket]
        assert digest == expected, child
    assert [r.key for r in page.records] == [r["key"] for r in by_child[sub_bucket]]
    with pytest.raises(UpstreamError) as refused:
        fetch_digests(config, bucket=sub_bucket)  # one level down only
    assert refused.value.http_status == 400


# -- repairs ---------------------------------------------------------------------


@pytest.mark.parametrize("digests", [True, False], ids=["digests", "full-snapshot"])
def test_each_kind_of_drift_is_repaired_exactly_through_the_commit_path(
    upstream: SimulatorHandle, in_acme: object, digests: bool
) -> None:
    # given: equal sides, then silent upstream changes of every kind, and a key
    # deleted by push and later re-created silently upstream
    upstream.dataset.seed_records(200)
    source = source_on(upstream.base_url, digests=digests)
    mirror(source.pk, upstream.dataset)
    revived = upstream.dataset.delete("rec-000150")
    push(source.pk, [{"id": "del-150", "type": "delete", "key": "rec-000150", "version": revived.version}])
    upstream.dataset.upsert("rec-000150", data(7), silent=True)
    made = _drift(upstream, changed=3, deleted=2, added=2)
    # when
    run = run_now(source)
    # then
    assert run.status == ReconcileStatus.SUCCEEDED
    assert run.mode == ("digest" if digests else "full")
    assert (run.missing, run.changed, run.deleted, run.corrections) == (3, 3, 2, 8)
    assert (run.upstream_count, run.local_count) == (len(upstream.dataset), 199)  # one was a tombstone
    assert local_state(source.pk) == upstream_state(upstream.dataset)
    changes = _reconcile_changes(source)
    assert sorted((c.type, c.key) for c in changes) == sorted(
        [("upsert", k) for k in [*made["changed"], *made["added"], "rec-000150"]]
        + [("delete", k) for k in made["deleted"]]
    )
    assert all(c.event_id.startswith(f"reconcile:{run.pk}:") for c in changes)
    assert set(run.samples["deleted"]) == set(made["deleted"])
    # and a second run finds nothing to do
    again = run_now(source)
    assert (again.status, again.missing, again.changed, again.deleted, again.corrections) == (
        ReconcileStatus.SUCCEEDED,
        0,
        0,
        0,
        0,
    )
    if digests:
        assert (again.buckets_differing, again.records_fetched, again.pages_fetched) == (0, 0, 0)
        assert again.digest_root == again.local_digest_root


def test_digests_fetch_only_the_buckets_that_differ(upstream: SimulatorHandle, in_acme: object) -> None:
    # given: 2,000 equal records, then one changed silently
    upstream.dataset.seed_records(2000)
    source = source_on(upstream.base_url)
    mirror(source.pk, upstream.dataset)
    [key] = _drift(upstream, changed=1)["changed"]
    # when: buckets this small are fetched whole
    run = run_now(source)
    # then
    bucket_size = sum(1 for r in upstream.dataset.records() if diff.bucket_of(r.key) == diff.bucket_of(key))
    assert (run.buckets_differing, run.changed, run.corrections) == (1, 1, 1)
    assert run.records_fetched == bucket_size < 30
    assert run.upstream_count == 2000


def test_large_differing_buckets_are_narrowed_down_by_their_sub_bucket_digests(
    upstream: SimulatorHandle, in_acme: object
) -> None:
    # given
    upstream.dataset.seed_records(2000)
    source = source_on(upstream.base_url)
    mirror(source.pk, upstream.dataset)
    made = _drift(upstream, changed=2, deleted=1, added=1)
    # when: every bucket counts as large here
    run = run_now(source, tuning=Tuning(descend_min_records=1))
    # then: only the sub-buckets of the four keys are fetched
    touched = {diff.bucket_of(k, 4) for keys in made.values() for k in keys}
    assert run.records_fetched == sum(1 for r in upstream.dataset.records() if diff.bucket_of(r.key, 4) in touched)
    assert run.records_fetched <= 6
    assert (run.missing, run.changed, run.deleted, run.corrections) == (1, 2, 1, 4)
    assert run.upstream_count == len(upstream.dataset)
    assert local_state(source.pk) == upstream_state(upstream.dataset)


@pytest.mark.parametrize("sub_buckets_only", [False, True], ids=["no-digests", "no-sub-bucket-digests"])
def test_an_upstream_without_optional_digests_is_reconciled_all_the_same(
    in_acme: object, sub_buckets_only: bool
) -> None:
    with upstream_without_digests(sub_buckets_only=sub_buckets_only) as (url, sim):
        # given
        sim.dataset.seed_records(300)
        source = source_on(url)
        mirror(source.pk, sim.dataset)
        sim.dataset.upsert("rec-000007", data(1), silent=True)
        sim.dataset.delete("rec-000008", silent=True)
        # when
        run = run_now(source, tuning=Tuning(descend_min_records=1))
    # then
    assert run.status == ReconcileStatus.SUCCEEDED
    assert run.mode == ("digest" if sub_buckets_only else "full")
    assert (run.changed, run.deleted, run.corrections) == (1, 1, 2)
    assert local_state(source.pk) == upstream_state(sim.dataset)


# -- never regress, never guess --------------------------------------------------


def test_a_local_version_newer_than_the_snapshot_is_left_alone(upstream: SimulatorHandle, in_acme: object) -> None:
    # given: pushes newer than the snapshot (an upsert, and a delete)
    upstream.dataset.seed_records(20)
    source = source_on(upstream.base_url)
    mirror(source.pk, upstream.dataset)
    push(
        source.pk,
        [
            {"id": "p1", "type": "upsert", "key": "rec-000003", "version": 9, "data": {"fresh": True}},
            {"id": "p2", "type": "delete", "key": "rec-000004", "version": 9},
        ],
    )
    # when
    run = run_now(source)
    # then
    assert (run.status, run.in_flight, run.corrections) == (ReconcileStatus.SUCCEEDED, 2, 0)
    record = Record.objects.get(source_id=source.pk, key="rec-000003")
    assert (record.version, record.data) == (9, {"fresh": True})
    assert Record.objects.get(source_id=source.pk, key="rec-000004").deleted


def test_a_same_version_with_other_data_is_reported_as_a_conflict_not_overwritten(
    upstream: SimulatorHandle, in_acme: object
) -> None:
    # given
    upstream.dataset.upsert("k", {"v": "upstream"})
    source = source_on(upstream.base_url)
    push(source.pk, [{"id": "p", "type": "upsert", "key": "k", "version": 1, "data": {"v": "ours"}}])
    # when
    run = run_now(source)
    # then
    assert (run.conflicts, run.corrections) == (1, 0)
    assert Record.objects.get(source_id=source.pk, key="k").data == {"v": "ours"}
    failure = FailureRecord.objects.get(source_id=source.pk, kind="reconciliation_drift")
    assert failure.detail["samples"]["conflicts"] == ["k"]


def test_an_upstream_failure_mid_run_applies_nothing_and_records_a_failure(
    upstream: SimulatorHandle, in_acme: object
) -> None:
    # given: drift spread over 5 snapshot pages, and an upstream that goes down after the 3rd
    upstream.dataset.seed_records(50)
    source = source_on(upstream.base_url, digests=False, page_limit=10, reconcile={"max_change_ratio": 0.5})
    mirror(source.pk, upstream.dataset)
    before = local_state(source.pk)
    _drift(upstream, changed=10, deleted=5)
    upstream.faults.update({"latency_ms": 30})

    def outage_after_three_pages() -> None:
        wait_for(lambda: upstream.sim.requests["snapshot.ok"] >= 3, timeout=5, interval=0.002)
        upstream.faults.update({"outage": "feed"})

    saboteur = threading.Thread(target=outage_after_three_pages)
    saboteur.start()
    # when
    run = run_now(source)
    saboteur.join()
    # then
    assert (run.status, run.error_kind) == (ReconcileStatus.FAILED, "upstream_unavailable")
    assert 2 <= run.pages_fetched <= 3
    assert run.corrections == 0
    assert not _reconcile_changes(source)
    assert local_state(source.pk) == before
    failure = FailureRecord.objects.get(source_id=source.pk, kind="upstream_unavailable")
    assert failure.detail["engine"] == "reconcile" and failure.detail["run"] == run.pk
    # and the next good run resolves it
    upstream.faults.clear()
    assert run_now(source).corrections == 15
    failure.refresh_from_db()
    assert failure.status == FailureStatus.RESOLVED


def test_invalid_snapshot_records_fail_the_run_before_anything_is_applied(
    upstream: SimulatorHandle, in_acme: object
) -> None:
    # given: the source's data schema, and an upstream record that breaks it
    upstream.dataset.upsert("good", {"qty": 1})
    upstream.dataset.upsert("bad", {"qty": "many"})
    source = source_on(upstream.base_url)
    Source.objects.filter(pk=source.pk).update(
        data_schema={"type": "object", "properties": {"qty": {"type": "integer"}}}
    )
    # when
    run = run_now(source)
    # then
    assert (run.status, run.error_kind) == (ReconcileStatus.FAILED, "schema_invalid")
    assert "bad" in run.error
    assert not Record.objects.filter(source_id=source.pk).exists()


# -- the safety cap --------------------------------------------------------------


def test_a_diff_past_the_cap_is_held_applies_nothing_and_asks_for_approval(
    upstream: SimulatorHandle, in_acme: object
) -> None:
    # given: 6 of 40 records changed or deleted upstream: 15% > 10%
    upstream.dataset.seed_records(40)
    source = source_on(upstream.base_url)
    mirror(source.pk, upstream.dataset)
    before = local_state(source.pk)
    made = _drift(upstream, changed=4, deleted=2)
    # when
    held = run_now(source)
    # then
    assert (held.status, held.error_kind) == (ReconcileStatus.AWAITING_APPROVAL, "change_ratio")
    assert (held.changed, held.deleted, held.corrections) == (4, 2, 0)
    assert local_state(source.pk) == before
    assert not _reconcile_changes(source)
    [action] = HealingAction.objects.filter(source_id=source.pk)
    assert (action.strategy, action.risk, action.status) == ("full_reconcile", "high", "awaiting_approval")
    assert action.detail["run"] == held.pk
    assert (action.detail["changed"], action.detail["deleted"], action.detail["change_ratio"]) == (4, 2, 0.15)
    assert sorted(action.detail["samples"]["changed"]) == sorted(made["changed"])
    assert action.detail["hold_reason"] == "change_ratio"
    # when: approved, the run starts again from a fresh diff
    healing_action_approve(action=action, actor="alice", reason="checked the upstream")
    held.refresh_from_db()
    assert held.status == ReconcileStatus.RUNNING
    run = reconcile_execute(run_id=held.pk)
    # then
    assert run is not None and run.pk == held.pk
    assert (run.status, run.corrections) == (ReconcileStatus.SUCCEEDED, 6)
    assert local_state(source.pk) == upstream_state(upstream.dataset)
    action.refresh_from_db()
    assert (action.status, action.decided_by, action.reason) == ("succeeded", "alice", "checked the upstream")
    assert action.outcome is not None and action.outcome["corrections"] == 6


def test_repeated_held_runs_fold_into_one_waiting_action(upstream: SimulatorHandle, in_acme: object) -> None:
    # given
    upstream.dataset.seed_records(10)
    source = source_on(upstream.base_url)
    mirror(source.pk, upstream.dataset)
    _drift(upstream, changed=5)
    first = run_now(source)
    # when
    second = run_now(source)
    # then
    [action] = HealingAction.objects.filter(source_id=source.pk)
    assert action.detail["run"] == second.pk
    first.refresh_from_db()
    assert (first.status, first.error_kind) == (ReconcileStatus.FAILED, "superseded")
    assert second.status == ReconcileStatus.AWAITING_APPROVAL


def test_an_empty_snapshot_is_held_however_small_the_source(upstream: SimulatorHandle, in_acme: object) -> None:
    # given: a broken upstream that serves nothing
    upstream.dataset.seed_records(3)
    source = source_on(upstream.base_url, reconcile={"max_change_ratio": 1.0})
    mirror(source.pk, upstream.dataset)
    upstream.dataset.reset()
    # when
    run = run_now(source)
    # then
    assert (run.status, run.error_kind) == ("awaiting_approval", "empty_snapshot")
    assert (run.deleted, run.upstream_count) == (3, 0)
    assert len(local_state(source.pk)) == 3
    assert HealingAction.objects.get(source_id=source.pk).detail["hold_reason"] == "empty_snapshot"


def test_an_approved_run_that_now_sees_far_more_drift_is_held_again(upstream: SimulatorHandle, in_acme: object) -> None:
    # given: a 15% diff approved, then the upstream breaks and serves nothing
    upstream.dataset.seed_records(40)
    source = source_on(upstream.base_url)
    mirror(source.pk, upstream.dataset)
    _drift(upstream, changed=6)
    held = run_now(source)
    action = HealingAction.objects.get(source_id=source.pk)
    healing_action_approve(action=action, actor="alice", reason="")
    upstream.dataset.reset()
    # when
    run = reconcile_execute(run_id=held.pk)
    # then: nothing deleted; the approval failed and a new one is asked for
    assert run is not None and (run.status, run.error_kind) == ("awaiting_approval", "empty_snapshot")
    assert len(local_state(source.pk)) == 40
    action.refresh_from_db()
    assert action.status == HealingStatus.FAILED and action.outcome is not None and action.outcome["held_again"]
    waiting = HealingAction.objects.get(source_id=source.pk, status="awaiting_approval")
    assert waiting.pk != action.pk and waiting.detail["run"] == held.pk


def test_rejecting_fails_the_held_run_and_keeps_who_and_why(upstream: SimulatorHandle, in_acme: object) -> None:
    # given
    upstream.dataset.seed_records(10)
    source = source_on(upstream.base_url)
    mirror(source.pk, upstream.dataset)
    _drift(upstream, deleted=5)
    held = run_now(source)
    action = HealingAction.objects.get(source_id=source.pk)
    # when
    healing_action_reject(action=action, actor="alice", reason="upstream migration in progress")
    # then
    held.refresh_from_db()
    assert (held.status, held.error_kind) == (ReconcileStatus.FAILED, "rejected")
    assert held.error == "rejected by alice: upstream migration in progress"
    action.refresh_from_db()
    assert (action.status, action.decided_by) == ("rejected", "alice")
    assert action.decided_at is not None
    assert len(local_state(source.pk)) == 10


# -- drift as a failure ----------------------------------------------------------


def test_drift_is_reported_with_its_keys_and_the_mode_switch_window(upstream: SimulatorHandle, in_acme: object) -> None:
    # given: a switch to polling a minute ago, then keys missed
    upstream.dataset.seed_records(50)
    source = source_on(upstream.base_url, reconcile={"interval_s": 300})
    mirror(source.pk, upstream.dataset)
    ModeSwitch.objects.create(
        source=source, from_mode="event", to_mode="polling", transition="degrade", reason="silent",
        at=timezone.now() - timedelta(minutes=1),
    )  # fmt: skip
    made = _drift(upstream, changed=1, added=1)
    # when
    run = run_now(source)
    # then
    failure = FailureRecord.objects.get(source_id=source.pk, kind="reconciliation_drift")
    assert failure.detail["run"] == run.pk
    assert failure.detail["in_mode_switch_window"] is True
    assert failure.detail["mode_switch_window_s"] == 600
    assert failure.detail["mode_switches"][0]["to_mode"] == "polling"
    assert failure.detail["samples"] == {"changed": made["changed"], "missing": made["added"]}
    assert (failure.detail["missing"], failure.detail["changed"], failure.detail["corrections"]) == (1, 1, 2)
    # and a clean run closes it
    run_now(source)
    failure.refresh_from_db()
    assert failure.status == FailureStatus.RESOLVED


def test_drift_outside_any_mode_switch_window_says_so(upstream: SimulatorHandle, in_acme: object) -> None:
    upstream.dataset.seed_records(10)
    source = source_on(upstream.base_url, reconcile={"interval_s": 60})
    mirror(source.pk, upstream.dataset)
    ModeSwitch.objects.create(
        source=source, from_mode="event", to_mode="polling", transition="degrade", reason="silent",
        at=timezone.now() - timedelta(minutes=5),
    )  # fmt: skip
    _drift(upstream, added=1)
    run_now(source)
    failure = FailureRecord.objects.get(source_id=source.pk, kind="reconciliation_drift")
    assert failure.detail["in_mode_switch_window"] is False


# -- one run at a time, on a schedule --------------------------------------------


def test_a_second_request_while_a_run_is_running_gets_that_run(upstream: SimulatorHandle, in_acme: object) -> None:
    source = source_on(upstream.base_url)
    first, created = reconcile_request(source=source, trigger=ReconcileTrigger.MANUAL)
    second, again = reconcile_request(source=source, trigger=ReconcileTrigger.SCHEDULE)
    assert (created, again, second.pk) == (True, False, first.pk)
    with pytest.raises(IntegrityError), transaction.atomic():
        ReconciliationRun.objects.create(
            source=source, trigger="manual", started_at=timezone.now(), heartbeat_at=timezone.now()
        )


def test_a_redelivered_task_does_not_execute_a_claimed_run_twice(upstream: SimulatorHandle, in_acme: object) -> None:
    source = source_on(upstream.base_url)
    run, _ = reconcile_request(source=source, trigger=ReconcileTrigger.MANUAL)
    assert reconcile_execute(run_id=run.pk) is not None
    assert reconcile_execute(run_id=run.pk) is None
    assert upstream.sim.requests["snapshot.ok"] == 1  # the digests, once


def test_only_due_sources_without_a_live_or_held_run_are_started(upstream: SimulatorHandle, in_acme: object) -> None:
    # given
    long_ago = timezone.now() - timedelta(hours=1)

    def make(name: str, **reconcile: float) -> Source:
        source = source_on(upstream.base_url, name, reconcile={"interval_s": 300, **reconcile})
        Source.objects.filter(pk=source.pk).update(created_at=long_ago)
        return source

    due = make("due")
    recent = make("recent")
    off = make("off", interval_s=0)
    paused = make("paused")
    held = make("held")
    running = make("running")
    no_snapshot = make("no-snapshot")
    Source.objects.filter(pk=paused.pk).update(paused=True)
    Source.objects.filter(pk=no_snapshot.pk).update(config={**no_snapshot.config, "snapshot_url": None})
    now = timezone.now()
    ReconciliationRun.objects.create(
        source=recent, trigger="schedule", status="succeeded", started_at=now - timedelta(seconds=60), heartbeat_at=now
    )
    ReconciliationRun.objects.create(
        source=held, trigger="schedule", status="awaiting_approval", started_at=long_ago, heartbeat_at=long_ago
    )
    ReconciliationRun.objects.create(source=running, trigger="manual", started_at=now, heartbeat_at=now)
    # when
    started = reconciles_claim_due()
    # then
    runs = ReconciliationRun.objects.filter(pk__in=started)
    assert {run.source_id for run in runs} & {s.pk for s in (due, recent, off, paused, held, running, no_snapshot)} == {
        due.pk
    }
    assert all(run.trigger == "schedule" and run.status == "running" for run in runs)
    assert not set(reconciles_claim_due()) & set(started)


def test_a_run_whose_worker_died_is_abandoned_and_the_source_runs_again(
    upstream: SimulatorHandle, in_acme: object
) -> None:
    # given: a run that stopped beating long ago
    source = source_on(upstream.base_url, reconcile={"interval_s": 60})
    stale = timezone.now() - timedelta(seconds=STALE_AFTER_S + 5)
    dead = ReconciliationRun.objects.create(source=source, trigger="schedule", started_at=stale, heartbeat_at=stale)
    Source.objects.filter(pk=source.pk).update(created_at=stale)
    # when
    started = reconciles_claim_due()
    # then
    dead.refresh_from_db()
    assert (dead.status, dead.error_kind) == (ReconcileStatus.FAILED, "abandoned")
    assert ReconciliationRun.objects.filter(pk__in=started, source=source).count() == 1


def test_a_million_records_would_be_compared_at_a_useful_rate(upstream: SimulatorHandle, in_acme: object) -> None:
    """A small-scale sign of the bench's rate (bench/reconcile.py measures the real thing)."""
    upstream.dataset.seed_records(5000)
    source = source_on(upstream.base_url, digests=False, page_limit=1000)
    mirror(source.pk, upstream.dataset)
    started = time.perf_counter()
    run = run_now(source)
    elapsed = time.perf_counter() - started
    assert (run.status, run.upstream_count, run.corrections) == (ReconcileStatus.SUCCEEDED, 5000, 0)
    print(f"\ncompared 5,000 records in {elapsed:.2f}s: {5000 / elapsed:,.0f} records/s")


def test_a_rate_limited_snapshot_records_the_upstreams_retry_after(upstream: SimulatorHandle, in_acme: object) -> None:
    # given: an upstream answering every call with 429 and Retry-After: 7
    upstream.dataset.seed_records(5)
    source = source_on(upstream.base_url, digests=False)
    upstream.faults.update({"http_429_rate": 1.0, "retry_after_s": 7})
    # when
    run = run_now(source)
    # then: the failure carries what RCA and slow_polling need
    assert (run.status, run.error_kind) == (ReconcileStatus.FAILED, "rate_limited")
    failure = FailureRecord.objects.get(source_id=source.pk, kind="rate_limited")
    assert failure.detail["retry_after_s"] == 7
