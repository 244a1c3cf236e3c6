"""Pure: which time partitions to make ahead, which to drop, and how far the changes floor may move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engines.partitioning import (
    CHANGES,
    EPOCH,
    HEALTH_SAMPLES,
    Partition,
    changes_to_drop,
    parse_bound,
    partition_name,
    span_start,
    to_create,
    to_drop,
)

WEEK = timedelta(days=7)
DAY = timedelta(days=1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def week(start: str) -> Partition:
    begin = at(start)
    return Partition(begin, begin + WEEK, partition_name(CHANGES.table, begin))


def test_weeks_start_on_mondays_at_midnight_utc() -> None:
    assert EPOCH.weekday() == 0
    start = span_start(at("2026-12-06T15:30:00"), WEEK)  # a Sunday
    assert start == at("2026-11-30T00:00:00") and start.weekday() == 0
    assert span_start(at("2026-11-30T00:00:00"), WEEK) == at("2026-11-30T00:00:00")
    assert span_start(at("2026-12-06T15:30:00"), DAY) == at("2026-12-06T00:00:00")


def test_a_fresh_table_gets_the_current_span_and_the_ones_ahead() -> None:
    # when
    plan = to_create(CHANGES, [], at("2026-12-06T15:30:00"))
    # then
    assert [p.name for p in plan] == [
        "engines_change_p20261130",
        "engines_change_p20261207",
        "engines_change_p20261214",
    ]
    assert all(p.end - p.start == WEEK for p in plan)


def test_nothing_is_made_twice() -> None:
    existing = to_create(HEALTH_SAMPLES, [], at("2026-12-06T10:00:00"))
    assert to_create(HEALTH_SAMPLES, existing, at("2026-12-06T23:00:00")) == []
    # a day later only the new last day is missing
    (made,) = to_create(HEALTH_SAMPLES, existing, at("2026-12-07T01:00:00"))
    assert made.name == "engines_healthsample_p20261210"


def test_partitions_made_with_another_alignment_are_never_overlapped() -> None:
    # given: weekly partitions starting on Thursdays (made by hand, or by an older rule)
    existing = [
        Partition(at("2026-11-26T00:00:00"), at("2026-12-03T00:00:00")),
        Partition(at("2026-12-03T00:00:00"), at("2026-12-10T00:00:00")),
    ]
    # when
    plan = to_create(CHANGES, existing, at("2026-12-06T15:30:00"))
    # then: only the gaps, cut at span boundaries
    assert [(p.start, p.end) for p in plan] == [
        (at("2026-12-10T00:00:00"), at("2026-12-14T00:00:00")),
        (at("2026-12-14T00:00:00"), at("2026-12-21T00:00:00")),
    ]
    assert plan[0].name == "engines_change_p20261210"
    for new in plan:
        assert all(new.end <= old.start or new.start >= old.end for old in existing)


def test_partitions_whose_every_row_is_past_the_cutoff_are_dropped_oldest_first() -> None:
    parts = [week("2026-11-16"), week("2026-11-02"), week("2026-11-09"), week("2026-11-23")]
    dropped = to_drop(parts, cutoff=at("2026-11-17T00:00:00"))
    assert [p.name for p in dropped] == ["engines_change_p20261102", "engines_change_p20261109"]


def test_bounds_read_back_from_postgresql() -> None:
    part = parse_bound(
        "engines_change_p20261130", "FOR VALUES FROM ('2026-11-30 00:00:00+00') TO ('2026-12-07 00:00:00+00')"
    )
    assert part == Partition(at("2026-11-30T00:00:00"), at("2026-12-07T00:00:00"), "engines_change_p20261130")
    assert parse_bound("engines_change_default", "DEFAULT") is None


def test_a_subscription_behind_holds_the_floor_and_every_later_week() -> None:
    # given: three weeks past retention, seqs 1-100, 101-200, 201-300; a subscription at 150
    parts = [week("2026-11-02"), week("2026-11-09"), week("2026-11-16")]
    max_seq = {parts[0].name: 100, parts[1].name: 200, parts[2].name: 300}
    # when
    plan = changes_to_drop(parts, cutoff=at("2026-11-30T00:00:00"), max_seq=max_seq, min_subscription_cursor=150)
    # then
    assert [p.name for p in plan.drop] == [parts[0].name]
    assert plan.held_by_subscriptions


def test_without_subscriptions_every_week_past_retention_goes_empty_ones_included() -> None:
    parts = [week("2026-11-02"), week("2026-11-09")]
    plan = changes_to_drop(
        parts, cutoff=at("2026-11-30T00:00:00"), max_seq={parts[0].name: None, parts[1].name: 40},
        min_subscription_cursor=None,
    )  # fmt: skip
    assert plan.drop == parts and not plan.held_by_subscriptions


def test_a_subscription_that_has_everything_does_not_hold_anything() -> None:
    parts = [week("2026-11-02")]
    plan = changes_to_drop(
        parts, cutoff=at("2026-11-30T00:00:00"), max_seq={parts[0].name: 40}, min_subscription_cursor=40
    )
    assert plan.drop == parts
