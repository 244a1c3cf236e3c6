"""Capacity recommendations (observability/recommendations.py): what each measurement leads to, no database."""

from __future__ import annotations

from observability.recommendations import (
    PlatformFacts,
    QueueFacts,
    Severity,
    TenantFacts,
    platform_recommendations,
    slope_per_min,
    tenant_headroom,
    tenant_recommendations,
)


def _rising(start: float, per_min: float, minutes: int = 10) -> tuple[tuple[float, float], ...]:
    return tuple((1_000.0 + 60 * m, start + per_min * m) for m in range(minutes + 1))


def _tenant(**given: object) -> TenantFacts:
    facts: dict[str, object] = {"slug": "acme", "quota_events_per_s": 1000, "peak_events_per_s": 10, "events_per_s": 5}
    facts.update(given)
    return TenantFacts(**facts)  # type: ignore[arg-type]


def test_a_rising_queue_lag_asks_for_a_worker_on_that_queue():
    # given
    polls = QueueFacts(name="polls", depth=340, lag_s=12.0, samples=_rising(2.0, 1.0))
    # when
    [advice] = platform_recommendations(PlatformFacts(queues=(polls,)))
    # then
    assert advice.code == "queue_lag_rising" and advice.subject == "polls"
    assert advice.severity is Severity.WARNING
    assert advice.message.startswith("worker queue lag rising on polls: 12 s now")
    assert "add a worker" in advice.message and "BEASTFLOW_WORKER_QUEUES=polls" in advice.message


def test_a_lag_past_the_readiness_bound_is_critical():
    queue = QueueFacts(name="monitor", depth=5, lag_s=40.0, samples=_rising(10.0, 3.0), readiness_bound_s=30.0)
    [advice] = platform_recommendations(PlatformFacts(queues=(queue,)))
    assert advice.severity is Severity.CRITICAL


def test_a_long_but_steady_lag_still_asks_for_a_worker_without_calling_it_rising():
    queue = QueueFacts(name="callbacks", depth=50, lag_s=8.0, samples=_rising(8.0, 0.0))
    [advice] = platform_recommendations(PlatformFacts(queues=(queue,)))
    assert advice.code == "queue_lag_high" and "add a worker" in advice.message


def test_queues_that_keep_up_and_a_prompt_monitor_say_nothing():
    quiet = (QueueFacts(name="polls", depth=0, lag_s=None), QueueFacts(name="monitor", depth=2, lag_s=0.4))
    assert platform_recommendations(PlatformFacts(queues=quiet, monitor_lag_s=1.0)) == []


def test_a_late_monitor_asks_for_a_monitor_worker():
    [advice] = platform_recommendations(PlatformFacts(queues=(), monitor_lag_s=25.0))
    assert advice.code == "monitor_lag" and "BEASTFLOW_WORKER_QUEUES=monitor" in advice.message


def test_a_tenant_at_ninety_percent_of_its_ingest_quota_is_warned():
    # given
    facts = _tenant(quota_events_per_s=20_000, peak_events_per_s=18_400, events_per_s=9_000)
    # when
    [advice] = tenant_recommendations(facts)
    # then
    assert advice.severity is Severity.WARNING and advice.code == "ingest_quota"
    assert advice.message.startswith("tenant acme at 92% of its ingest quota (18,400 of 20,000 events/s")
    assert tenant_headroom(facts).ingest_pct == 8.0


def test_three_quarters_of_the_quota_is_only_information_and_less_is_nothing():
    [advice] = tenant_recommendations(_tenant(peak_events_per_s=800))
    assert advice.severity is Severity.INFO
    assert tenant_recommendations(_tenant(peak_events_per_s=700)) == []


def test_refusals_failing_polls_and_late_callbacks_each_get_their_advice_most_severe_first():
    facts = _tenant(
        throttled=12,
        polls=40,
        polls_failed=20,
        poll_p95_s=45.0,
        deliveries=30,
        deliveries_failed=6,
        callback_backlog_s=900.0,
        sources=95,
        max_sources=100,
        ingest_p99_ms=400.0,
    )
    codes = [advice.code for advice in tenant_recommendations(facts)]
    assert set(codes) == {
        "ingest_throttled",
        "polls_failing",
        "polls_slow",
        "callbacks_failing",
        "callbacks_behind",
        "sources_quota",
        "ingest_slow",
    }
    severities = [advice.severity for advice in tenant_recommendations(facts)]
    assert severities.index(Severity.INFO) > max(i for i, s in enumerate(severities) if s is Severity.WARNING)


def test_a_handful_of_polls_is_too_few_to_call_a_failure_rate():
    assert tenant_recommendations(_tenant(polls=3, polls_failed=3)) == []


def test_the_slope_needs_three_samples_spread_in_time():
    assert slope_per_min([(0.0, 1.0), (60.0, 2.0)]) is None
    assert slope_per_min([(5.0, 1.0), (5.0, 2.0), (5.0, 3.0)]) is None
    assert slope_per_min([(0.0, 0.0), (60.0, 2.0), (120.0, 4.0)]) == 2.0
