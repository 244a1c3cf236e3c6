"""The pure decisions of reconciliation: no database, no network."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from engines.reconcile import diff, policy
from engines.reconcile.diff import LocalRow, Verdict

H1, H2 = "a" * 64, "b" * 64


@pytest.mark.parametrize(
    ("local", "verdict"),
    [
        (None, Verdict.MISSING),
        (LocalRow(5, H1, deleted=False), Verdict.EQUAL),
        (LocalRow(4, H2, deleted=False), Verdict.CHANGED),
        (LocalRow(6, H2, deleted=False), Verdict.IN_FLIGHT),
        (LocalRow(5, H2, deleted=False), Verdict.CONFLICT),
        (LocalRow(4, "", deleted=True), Verdict.MISSING),
        (LocalRow(6, "", deleted=True), Verdict.IN_FLIGHT),
        (LocalRow(5, "", deleted=True), Verdict.CONFLICT),
    ],
)
def test_an_upstream_record_at_version_5_is_judged_against_the_local_row(
    local: LocalRow | None, verdict: Verdict
) -> None:
    assert diff.compare(5, H1, local) is verdict


def test_the_tally_counts_each_kind_and_keeps_a_bounded_sample() -> None:
    # given
    tally = diff.Tally(local=100)
    # when
    for n in range(30):
        tally.add(Verdict.CHANGED, f"k{n}")
    tally.add(Verdict.EQUAL, "same")
    tally.add(Verdict.CONFLICT, "odd")
    tally.deleted = 5
    # then
    assert (tally.changed, tally.conflicts, tally.destructive) == (30, 1, 35)
    assert tally.samples["changed"] == [f"k{n}" for n in range(diff.SAMPLE_KEYS)]
    assert tally.samples["conflicts"] == ["odd"]
    assert tally.change_ratio == pytest.approx(0.35)


def test_a_bucket_digest_is_sha256_of_its_lines_sorted_by_code_point() -> None:
    lines = [("é", 1, H1), ("z", 2, H2), ("a", 3, H1)]
    expected = hashlib.sha256(f"a\t3\t{H1}\nz\t2\t{H2}\né\t1\t{H1}\n".encode()).hexdigest()
    assert diff.bucket_digest(lines) == expected
    assert diff.bucket_digest([]) == diff.EMPTY_DIGEST


def test_only_buckets_whose_digests_differ_are_listed_and_an_absent_local_bucket_is_empty() -> None:
    upstream = {"00": diff.EMPTY_DIGEST, "01": H1, "02": H2}
    local = {"01": H1, "02": H1}
    assert diff.differing(upstream, local) == ["02"]
    assert diff.differing({"03": H1}, {}) == ["03"]


def test_correction_ids_name_the_run_version_and_key_and_stay_within_255_chars() -> None:
    assert diff.correction_event_id(7, "order-1", 3) == "reconcile:7:3:order-1"
    long_id = diff.correction_event_id(7, "k" * 500, 3)
    assert len(long_id) <= 255 and long_id.startswith("reconcile:7:3:sha256:")


def test_a_delete_of_a_key_gone_upstream_is_one_version_above_ours() -> None:
    assert diff.delete_version(41) == 42


def test_a_diff_within_the_cap_is_applied() -> None:
    decision = policy.decide(upstream=100, local=100, destructive=10, policy=policy.SafetyPolicy(0.10))
    assert decision.apply


def test_a_diff_past_the_cap_is_held() -> None:
    decision = policy.decide(upstream=100, local=100, destructive=11, policy=policy.SafetyPolicy(0.10))
    assert (decision.apply, decision.reason) == (False, policy.HoldReason.CHANGE_RATIO)
    assert "11 of 100" in decision.detail


def test_new_records_alone_never_trip_the_cap() -> None:
    decision = policy.decide(upstream=1_000, local=10, destructive=0, policy=policy.SafetyPolicy(0.10))
    assert decision.apply


def test_an_empty_snapshot_against_local_data_is_held_whatever_the_cap() -> None:
    decision = policy.decide(upstream=0, local=3, destructive=3, policy=policy.SafetyPolicy(1.0))
    assert (decision.apply, decision.reason) == (False, policy.HoldReason.EMPTY_SNAPSHOT)
    assert policy.decide(upstream=0, local=0, destructive=0, policy=policy.SafetyPolicy(0.1)).apply


def test_an_approval_widens_the_cap_to_twice_what_was_approved_and_no_further() -> None:
    # given: an operator approved a diff touching 15% of the records
    approved = policy.safety_policy(max_change_ratio=0.10, approved_ratio=0.15, approved_empty=False)
    # then
    assert approved.max_change_ratio == pytest.approx(0.30)
    assert policy.decide(upstream=100, local=100, destructive=30, policy=approved).apply
    assert not policy.decide(upstream=100, local=100, destructive=31, policy=approved).apply
    assert not policy.decide(upstream=0, local=100, destructive=100, policy=approved).apply


def test_an_approved_empty_snapshot_may_empty_the_source() -> None:
    approved = policy.safety_policy(max_change_ratio=0.10, approved_ratio=1.0, approved_empty=True)
    assert policy.decide(upstream=0, local=100, destructive=100, policy=approved).apply


def test_a_source_is_due_one_interval_after_its_last_run_or_its_creation() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    assert policy.next_due(last_started=None, created=t0, interval_s=300) == t0 + timedelta(seconds=300)
    later = t0 + timedelta(hours=1)
    assert policy.next_due(last_started=later, created=t0, interval_s=60) == later + timedelta(seconds=60)
    assert policy.next_due(last_started=None, created=t0, interval_s=0) is None
