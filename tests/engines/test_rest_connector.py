"""The rest connector against a real HTTP upstream: the simulator's `github` and `stripe` profiles.

Polls run in-process inside the test's rolled-back transaction (each page's
commit is a savepoint), against a simulator serving GitHub's issues list
(Link pages, since, ETag/304, X-RateLimit headers) or Stripe's lists
(starting_after / has_more) on a real socket. Whether a change counts as
missed by push depends on when it happened upstream: the upstream's clock
is set a minute behind (what a poll a minute after the change sees), and
the source is dated an hour back, so its changes are not a first backfill.
Tests that wait for a rate-limit window or a worker are marked e2e.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from beastflow.celery import app
from beastflow.redis_client import get_redis, key
from beastflow.tenancy import use_public
from engines import sources
from engines.connectors.mapping import version_of
from engines.ingest import service
from engines.ingest.commit import PendingBatch
from engines.ingest.validation import validate
from engines.judge import monitor_source
from engines.models import Change, Event, PollRun, PollStatus, Record, Source, StreamState
from engines.monitor import Window, signals_for
from engines.polling import audits_claim_due, breaker_key, poll_scheduled, polls_claim_due, source_poll
from healing.models import FailureRecord
from scheduling.models import SourceSchedule
from simulator.dataset import Dataset
from simulator.runner import SimulatorHandle, start_in_thread
from tests.conftest import Persona
from tests.engines.reconcile_support import run_now
from tests.factories import make_source
from tests.simulator.support import wait_for

OWNER, REPO = "octo-org", "hello-world"
LAG_S = 60.0


def _lagging() -> datetime:
    return datetime.now(UTC) - timedelta(seconds=LAG_S)


def _forget_soft_state(handle: SimulatorHandle) -> None:
    # A port can be reused by a later run: its breaker and rate-limit windows must not carry over.
    host = f"http://127.0.0.1:{handle.port}"
    client = get_redis()
    client.delete(breaker_key(host))
    for name in client.scan_iter(match=key("ratelimit", host, "*")):
        client.delete(name)


@contextmanager
def serving(profile: str, **options: Any) -> Iterator[SimulatorHandle]:
    with start_in_thread(profile=profile, profile_options=options) as handle:
        handle.sim.dataset = Dataset(seed=0, id_prefix="evt_rest", clock=_lagging)
        _forget_soft_state(handle)
        yield handle
        _forget_soft_state(handle)


@pytest.fixture
def github() -> Iterator[SimulatorHandle]:
    with serving("github", owner=OWNER, repo=REPO, rate_limit=None) as handle:
        yield handle


@pytest.fixture
def stripe() -> Iterator[SimulatorHandle]:
    with serving("stripe") as handle:
        yield handle


def github_config(handle: SimulatorHandle, **overrides: Any) -> dict[str, Any]:
    """What the github-issues preset fills, pointed at the simulator."""
    return {
        "base_url": handle.base_url,
        "list_path": "/repos/{owner}/{repo}/issues",
        "owner": OWNER,
        "repo": REPO,
        "params": {"state": "all", "sort": "updated", "direction": "asc", "per_page": "100"},
        "pagination": {"style": "link"},
        "since_param": "since",
        "since_field": "updated_at",
        "key": "to_string(id)",
        "version": "updated_at",
        "timeout_s": 2.0,
        **overrides,
    }


def rest_source(
    config: dict[str, Any],
    name: str = "issues",
    *,
    age_s: float = 3600,
    poll: dict[str, Any] | None = None,
    **spec: Any,
) -> Source:
    source, _ = make_source(name, connector="rest", config=config, poll=poll or {}, **spec)
    Source.objects.filter(pk=source.pk).update(created_at=timezone.now() - timedelta(seconds=age_s))
    return Source.objects.get(pk=source.pk)


def poll(source: Source, trigger: str = "schedule") -> PollRun:
    run = source_poll(source_id=source.pk, trigger=trigger)
    assert run is not None
    return run


def requests(handle: SimulatorHandle, endpoint: str = "issues") -> dict[str, int]:
    return {name: n for name, n in handle.sim.requests.items() if name.startswith(f"{endpoint}.")}


def issues(handle: SimulatorHandle) -> list[dict[str, Any]]:
    return [issue_of(handle, r.key) for r in handle.sim.dataset.records()]


def push_issues(source: Source, pushed: list[dict[str, Any]]) -> None:
    """What a GitHub webhook delivery of each issue commits (its own delivery id, origin push)."""
    raw = [
        {"id": f"delivery-{n}-{i['id']}", "type": "upsert", "key": str(i["id"]), "version": version_of(i["updated_at"]),
         "data": i}
        for n, i in enumerate(pushed)
    ]  # fmt: skip
    batch = validate(raw)
    assert not batch.errors
    with transaction.atomic(), connection.cursor() as cursor:
        service.commit(cursor, [PendingBatch(source_id=source.pk, events=batch.events, origin="push")])


def stream(source: Source) -> StreamState:
    return StreamState.objects.get(pk=source.pk)


# -- pagination ----------------------------------------------------------------------------------


def test_the_first_poll_reads_every_link_page_and_backfills_without_counting_misses(
    github: SimulatorHandle, in_acme: object
) -> None:
    # given: 35 issues upstream, 10 a page; the source is new (its issues changed before it existed)
    github.sim.dataset.seed_records(35)
    source = rest_source(github_config(github, params={"state": "all", "sort": "updated", "direction": "asc",
                                                       "per_page": "10"}), age_s=0)  # fmt: skip
    # when
    run = poll(source)
    # then
    assert (run.status, run.pages, run.events, run.changes, run.caught_up) == (PollStatus.SUCCEEDED, 4, 35, 35, True)
    assert (run.from_seq, run.to_seq, run.missed) == (None, None, 0)
    assert requests(github) == {"issues.ok": 4}
    keys = set(Record.objects.filter(source_id=source.pk).values_list("key", flat=True))
    assert keys == {str(i["id"]) for i in issues(github)}
    newest = max(i["updated_at"] for i in issues(github))
    assert run.details["watermark_from"] is None
    assert run.details["watermark_to"] == datetime.fromisoformat(newest.replace("Z", "+00:00")).isoformat()
    assert set(Event.objects.filter(source_id=source.pk).values_list("origin", flat=True)) == {"poll"}
    some = issues(github)[0]
    assert Event.objects.filter(source_id=source.pk, event_id=f"{some['id']}:{version_of(some['updated_at'])}").exists()
    assert stream(source).polled_missed == 0 and stream(source).polled_missed_at is not None


def test_page_number_pagination_stops_at_the_first_empty_page(github: SimulatorHandle, in_acme: object) -> None:
    # given
    github.sim.dataset.seed_records(25)
    params = {"state": "all", "sort": "updated", "direction": "asc", "per_page": "10"}
    source = rest_source(github_config(github, params=params, pagination={"style": "page", "param": "page"}))
    # when
    run = poll(source)
    # then: pages 1..3 hold records, page 4 is empty
    assert (run.status, run.pages, run.events, run.caught_up) == (PollStatus.SUCCEEDED, 4, 25, True)
    assert Record.objects.filter(source_id=source.pk).count() == 25


def test_stripes_cursor_pagination_reads_every_page_newest_first(stripe: SimulatorHandle, in_acme: object) -> None:
    # given: Stripe's events list, newest first, 7 a page
    stripe.sim.dataset.seed_records(20)
    config = {
        "base_url": stripe.base_url,
        "list_path": "/v1/events",
        "params": {"type": "customer.*", "limit": "7"},
        "records": "data[?data.object.object == 'customer']",
        "pagination": {"style": "cursor", "next": "has_more && data[-1].id", "param": "starting_after"},
        "since_param": "created[gte]",
        "since_field": "created",
        "since_format": "unix",
        "key": "data.object.id",
        "version": "created",
        "op": "type == 'customer.deleted' && 'delete' || 'upsert'",
        "data": "data.object",
        "timeout_s": 2.0,
    }
    source = rest_source(config, "customers")
    # when
    run = poll(source)
    # then
    assert (run.status, run.pages, run.events, run.caught_up) == (PollStatus.SUCCEEDED, 3, 20, True)
    assert Record.objects.filter(source_id=source.pk, deleted=False).count() == 20
    assert requests(stripe, "events") == {"events.ok": 3}


def test_a_listing_out_of_since_order_cut_short_resumes_where_it_stopped(
    stripe: SimulatorHandle, in_acme: object
) -> None:
    # given: 20 events newest first, 5 a page, 2 pages a poll
    stripe.sim.dataset.seed_records(20)
    config = {
        "base_url": stripe.base_url,
        "list_path": "/v1/events",
        "params": {"type": "customer.*", "limit": "5"},
        "pagination": {"style": "cursor", "next": "has_more && data[-1].id", "param": "starting_after"},
        "since_param": "created[gte]",
        "since_field": "created",
        "since_format": "unix",
        "records": "data",
        "key": "data.object.id",
        "version": "created",
        "data": "data.object",
        "timeout_s": 2.0,
    }
    source = rest_source(config, "customers", poll={"page_budget": 2})
    # when
    first, second = poll(source), poll(source)
    # then: the second poll went on from page 3 instead of reading the newest pages again
    assert (first.pages, first.caught_up, first.details["pass_unfinished"]) == (2, False, True)
    assert first.details["watermark_to"] is None  # not moved: older records were not reached
    assert (second.pages, second.caught_up, second.details["resumed"]) == (2, True, True)
    assert second.details["watermark_to"] is not None
    assert Record.objects.filter(source_id=source.pk).count() == 20


def test_a_run_of_equal_since_times_longer_than_the_budget_resumes_instead_of_asking_again(
    github: SimulatorHandle, in_acme: object
) -> None:
    # given: 30 issues changed in the same second (the clock held, so a loaded machine cannot
    # spread them over two), 10 a page, 2 pages a poll
    instant = datetime.now(UTC)
    github.sim.dataset.clock = lambda: instant
    github.sim.dataset.seed_records(30)
    params = {"state": "all", "sort": "updated", "direction": "asc", "per_page": "10"}
    source = rest_source(github_config(github, params=params), poll={"page_budget": 2})
    # when
    first, second = poll(source), poll(source)
    # then: equal times prove no order, so the pass went on at page 3 rather than from page 1 again
    assert (first.pages, first.caught_up, first.details["pass_unfinished"]) == (2, False, True)
    assert (second.pages, second.caught_up, second.details["resumed"]) == (1, True, True)
    assert Record.objects.filter(source_id=source.pk).count() == 30
    assert second.details["watermark_to"] is not None


def test_shopifys_page_info_links_are_followed_as_they_come(in_acme: object) -> None:
    # given: the shopify-orders preset's listing, 10 orders a page, ordered by updated_at
    with serving("shopify", rate_limit=None) as handle:
        handle.sim.dataset.seed_records(25)
        config = {
            "base_url": handle.base_url,
            "list_path": "/admin/api/2024-01/orders.json",
            "params": {"status": "any", "limit": "10", "order": "updated_at asc"},
            "records": "orders",
            "pagination": {"style": "link"},
            "since_param": "updated_at_min",
            "since_field": "updated_at",
            "key": "to_string(id)",
            "version": "updated_at",
            "timeout_s": 2.0,
        }
        source = rest_source(config, "orders")
        # when
        first = poll(source)
        handle.sim.mutate(count=1)
        second = poll(source)
        # then: the Link targets (page_info only, no other filter) were followed unchanged
        assert (first.status, first.pages, first.events, first.caught_up) == (PollStatus.SUCCEEDED, 3, 25, True)
        assert (second.status, second.changes) == (PollStatus.SUCCEEDED, 1)
        assert second.details["since"] is not None
        assert Record.objects.filter(source_id=source.pk).count() == len(handle.sim.dataset)


# -- watermark, overlap, ETag -----------------------------------------------------------------------


def test_the_overlap_asks_again_behind_the_watermark_and_the_refetched_records_fold(
    github: SimulatorHandle, in_acme: object
) -> None:
    # given: a first poll read 30 issues; then one issue changes upstream
    github.sim.dataset.seed_records(30)
    source = rest_source(github_config(github, overlap_s=5))
    first = poll(source)
    github.sim.mutate(count=1)
    # when
    second = poll(source)
    # then: asked from the watermark minus 5 s, which re-reads records already held
    watermark = datetime.fromisoformat(first.details["watermark_to"])
    assert second.details["since"] == (watermark - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert second.events > 1
    assert second.changes == 1
    assert second.new_events == 1  # the rest were the same <key>:<version> ids: duplicates
    assert Change.objects.filter(source_id=source.pk).count() == 31


def test_an_unchanged_single_page_since_query_is_answered_304_and_costs_nothing(
    github: SimulatorHandle, in_acme: object
) -> None:
    # given: the first poll reads everything; the second asks from the watermark (and keeps the ETag)
    github.sim.dataset.seed_records(12)
    source = rest_source(github_config(github))
    poll(source)
    second = poll(source)
    # when
    third = poll(source)
    # then
    assert second.details["not_modified"] == 0
    assert (third.status, third.pages, third.changes, third.caught_up) == (PollStatus.SUCCEEDED, 0, 0, True)
    assert third.details["not_modified"] == 1
    assert third.http_status == 304
    assert requests(github) == {"issues.ok": 2, "issues.not_modified": 1}
    # and a change upstream changes the answer
    github.sim.mutate(count=1)
    fourth = poll(source)
    assert (fourth.http_status, fourth.changes) == (200, 1)


# -- what push missed --------------------------------------------------------------------------------


def test_a_poll_counts_as_missed_only_the_changes_push_had_not_delivered(
    github: SimulatorHandle, in_acme: object
) -> None:
    # given: 6 issues changed a minute ago; push delivered 2 of them
    github.sim.dataset.seed_records(6)
    source = rest_source(github_config(github))
    upstream = issues(github)
    push_issues(source, upstream[:2])
    # when
    run = poll(source, "audit")
    # then
    assert (run.trigger, run.changes, run.missed) == ("audit", 4, 4)
    assert sorted(run.details["missed_keys"]) == sorted(str(i["id"]) for i in upstream[2:])
    state = stream(source)
    assert state.polled_missed == 4
    assert state.last_audit_at is not None and state.polled_missed_at is not None
    # and a later poll that finds nothing new clears the signal
    assert poll(source).missed == 0
    assert stream(source).polled_missed == 0


def test_what_a_poll_finds_is_judged_at_once_not_at_a_settled_streams_far_deadline(
    github: SimulatorHandle, in_acme: object
) -> None:
    # given: a settled stream whose next judgement is far away
    github.sim.dataset.seed_records(3)
    source = rest_source(github_config(github))
    far = timezone.now() + timedelta(minutes=5)
    SourceSchedule.objects.filter(source_id=source.pk).update(next_eval_at=far)
    # when: an audit finds what push missed
    run = poll(source, "audit")
    # then: the judge is due now
    assert run.missed == 3
    due = SourceSchedule.objects.get(source_id=source.pk).next_eval_at
    assert due is not None and due <= timezone.now()


def test_a_change_that_just_happened_is_not_a_miss_yet(github: SimulatorHandle, in_acme: object) -> None:
    # given: the upstream's clock is on time: push may still be on its way
    github.sim.dataset = Dataset(seed=1, id_prefix="evt_now")
    github.sim.dataset.seed_records(3)
    source = rest_source(github_config(github))
    # when
    run = poll(source)
    # then
    assert (run.changes, run.missed) == (3, 0)


def test_the_monitor_judges_a_rest_stream_by_what_the_latest_recent_poll_found_missed(
    github: SimulatorHandle, in_acme: object
) -> None:
    # given
    source = rest_source(github_config(github), age_s=600, poll={"audit_interval_s": 30, "max_interval_s": 20})
    StreamState.objects.filter(pk=source.pk).update(polled_missed=3, polled_missed_at=timezone.now())
    window = Window(delivery_rate=None, baseline_rate=None, push_errors=0, push_total=0, sample_due=False)
    now = time.time()
    # when
    fresh = signals_for(source, stream(source), window, now)
    stale = signals_for(source, stream(source), window, now + 61)
    # then: recent = within 2 x max(audit interval, max poll interval)
    assert fresh.missed_pushes == 3
    assert stale.missed_pushes is None


def test_a_rest_source_whose_push_went_silent_still_degrades_on_silence(
    github: SimulatorHandle, in_acme: object
) -> None:
    # given: audits find nothing missed, but push, which came every few seconds, stopped a minute ago
    source = rest_source(github_config(github, expected_interval_s=2.0), age_s=600)
    StreamState.objects.filter(pk=source.pk).update(
        polled_missed=0,
        polled_missed_at=timezone.now(),
        expected_interval_s=2.0,
        last_push_at=timezone.now() - timedelta(seconds=60),
    )
    # when
    health = monitor_source(Source.objects.get(pk=source.pk), now=time.time())
    # then
    assert health.verdict.value == "bad"
    assert health.penalties["silence"] == 100
    assert health.penalties["missed_pushes"] == 0


def test_the_api_shows_what_polls_found_missed(github: SimulatorHandle, alice: Persona, in_acme: object) -> None:
    # given
    github.sim.dataset.seed_records(3)
    source = rest_source(github_config(github))
    poll(source, "audit")
    client = alice.client()
    # when
    polls = client.get(f"/api/v1/sources/{source.pk}/polls").json()["results"]
    health = client.get(f"/api/v1/sources/{source.pk}/health").json()
    # then
    assert (polls[0]["trigger"], polls[0]["missed"], polls[0]["from_seq"]) == ("audit", 3, None)
    assert len(polls[0]["details"]["missed_keys"]) == 3
    assert (health["polled_missed"], health["last_audit_at"] is not None) == (3, True)


# -- rate limits and Retry-After ---------------------------------------------------------------------


def test_a_spent_rate_limit_stops_paging_and_no_call_goes_out_before_its_reset(
    in_acme: object,
) -> None:
    # given: 3 requests per 30 s window; the listing needs 5 pages
    with serving("github", owner=OWNER, repo=REPO, rate_limit=3, rate_window_s=30) as handle:
        handle.sim.dataset.seed_records(50)
        params = {"state": "all", "sort": "updated", "direction": "asc", "per_page": "10"}
        source = rest_source(github_config(handle, params=params))
        # when
        first = poll(source)
        second = poll(source, "manual")
        # then: the third answer said Remaining: 0; nothing more was asked
        assert (first.status, first.pages, first.caught_up) == (PollStatus.SUCCEEDED, 3, False)
        assert first.details["rate_limit_waits"] == 1
        assert 25 <= first.next_interval_s <= 31
        assert (second.status, second.error_kind) == (PollStatus.SKIPPED, "rate_limited")
        assert requests(handle) == {"issues.ok": 3}
        assert handle.sim.profile.settings()["rate_refused"] == 0
        next_at = Source.objects.get(pk=source.pk).next_poll_at
        assert next_at is not None and next_at > timezone.now() + timedelta(seconds=20)
        assert not FailureRecord.objects.filter(source_id=source.pk).exists()  # waiting is not failing


def test_a_refused_rate_limit_is_a_rate_limited_failure_that_waits_for_the_reset(in_acme: object) -> None:
    # given: the budget is spent before we ask (GitHub answers 403 with Remaining: 0)
    with serving("github", owner=OWNER, repo=REPO, rate_limit=0, rate_window_s=40) as handle:
        handle.sim.dataset.seed_records(5)
        source = rest_source(github_config(handle))
        # when
        first = poll(source)
        second = poll(source, "manual")
        # then
        assert (first.status, first.error_kind, first.http_status) == (PollStatus.FAILED, "rate_limited", 403)
        assert first.next_interval_s >= 30
        assert second.status == PollStatus.SKIPPED
        assert requests(handle) == {"issues.over_limit": 1}
        failure = FailureRecord.objects.get(source_id=source.pk, kind="rate_limited")
        assert failure.detail["retry_after_s"] >= 30


def test_retry_after_on_a_429_is_honoured_by_the_schedule_and_the_next_call(
    github: SimulatorHandle, in_acme: object
) -> None:
    # given
    github.sim.dataset.seed_records(3)
    github.faults.update({"http_429_rate": 1.0, "retry_after_s": 7})
    source = rest_source(github_config(github))
    # when
    first = poll(source)
    second = poll(source, "manual")
    # then
    assert (first.status, first.error_kind, first.http_status) == (PollStatus.FAILED, "rate_limited", 429)
    assert first.next_interval_s >= 7
    assert second.status == PollStatus.SKIPPED  # the window Retry-After closed is not called into
    assert requests(github) == {"issues.rate_limited": 1}


@pytest.mark.e2e
def test_a_rate_limit_window_is_waited_out_then_the_listing_goes_on_without_a_refusal(in_acme: object) -> None:
    # given: 2 requests per 3 s; 5 pages to read
    with serving("github", owner=OWNER, repo=REPO, rate_limit=2, rate_window_s=3) as handle:
        handle.sim.dataset.seed_records(45)
        params = {"state": "all", "sort": "updated", "direction": "asc", "per_page": "10"}
        source = rest_source(github_config(handle, params=params))
        runs: list[PollRun] = []

        def caught_up() -> bool:
            runs.append(poll(source, "manual"))
            return runs[-1].caught_up

        # when: polling as fast as a caller could
        wait_for(caught_up, timeout=30, interval=0.2)
        # then: every record, and the upstream never had to refuse a request
        assert Record.objects.filter(source_id=source.pk).count() == 45
        assert handle.sim.profile.settings()["rate_refused"] == 0
        assert requests(handle)["issues.ok"] == sum(run.pages for run in runs)
        assert any(run.status == PollStatus.SKIPPED for run in runs)


# -- audits ------------------------------------------------------------------------------------------


def test_rest_sources_in_event_mode_are_due_for_an_audit_and_others_are_not(
    github: SimulatorHandle, in_acme: object
) -> None:
    # given
    audited = rest_source(github_config(github), "audited")
    never = rest_source(github_config(github), "never", poll={"audit_interval_s": 0})
    paused = rest_source(github_config(github), "paused")
    polling = rest_source(github_config(github), "polling")
    http, _ = make_source("http-in-event")
    Source.objects.filter(pk=paused.pk).update(paused=True)
    Source.objects.filter(pk=polling.pk).update(mode="polling")
    mine = {audited.pk, never.pk, paused.pk, polling.pk, http.pk}
    # when
    audits = set(audits_claim_due()) & mine
    polls = set(polls_claim_due()) & mine
    # then
    assert audits == {audited.pk}
    assert polls == {polling.pk}
    assert not set(audits_claim_due()) & mine  # claimed: not sent again meanwhile
    # and: what pausing or resuming a source asks the dispatcher to look at (unpaused, as once resumed)
    scheduled = {s.pk for s in Source.objects.filter(pk__in=mine) if poll_scheduled(s)}
    assert scheduled == {audited.pk, paused.pk, polling.pk}


def test_an_audit_poll_schedules_the_next_audit_at_the_audit_interval(github: SimulatorHandle, in_acme: object) -> None:
    # given: a quick poll rhythm that event mode must not use
    github.sim.dataset.seed_records(3)
    source = rest_source(github_config(github), poll={"audit_interval_s": 45, "min_interval_s": 1, "max_interval_s": 5})
    # when
    run = poll(source, "audit")
    # then
    assert run.next_interval_s == 45
    next_at = Source.objects.get(pk=source.pk).next_poll_at
    assert next_at is not None and timedelta(seconds=40) < next_at - timezone.now() <= timedelta(seconds=45)
    assert stream(source).last_audit_at is not None
    assert source.pk not in audits_claim_due()


def test_missed_pushes_move_a_rest_source_to_polling_and_back_once_polls_find_nothing_missed(
    github: SimulatorHandle, in_acme: object
) -> None:
    # given: a quiet repository (silence is not judged for an hour) in event mode, push up to date
    github.sim.dataset.seed_records(4)
    source = rest_source(
        github_config(github),
        age_s=600,
        health={"min_silence_s": 3600},
        hysteresis={
            "fail_threshold": 2,
            "recover_threshold": 2,
            "min_dwell_s": 0,
            "validation_window_s": 0,
            "flap_switches": 10,
        },
    )
    push_issues(source, issues(github))
    for name in get_redis().keys(key("monitor", "*")):
        get_redis().delete(name)

    def tick() -> Source:
        monitor_source(Source.objects.get(pk=source.pk), now=time.time())
        return Source.objects.get(pk=source.pk)

    # when: webhooks are dropped: an audit finds the two changed issues push never delivered
    github.sim.mutate(count=2)
    audit = poll(source, "audit")
    modes = [tick().mode for _ in range(3)]
    # then: bad verdicts move it to hybrid
    assert (audit.changes, audit.missed) == (2, 2)
    assert modes[-1] == "hybrid"
    # when: the hybrid poll catches up, finding nothing more missed
    assert poll(source).missed == 0
    assert tick().mode == "polling"
    # and push is healthy again: a change is delivered before any poll sees it
    [change] = github.sim.mutate(count=1)
    push_issues(source, [issue_of(github, change.key)])
    modes = [tick().mode for _ in range(4)]
    assert modes[-1] == "hybrid"
    validating = poll(source)
    # then: the validation poll found nothing push missed: back to event mode
    assert (validating.changes, validating.missed) == (0, 0)
    assert tick().mode == "event"
    switches = list(source.mode_switches.order_by("at", "id").values_list("from_mode", "to_mode"))
    assert switches == [("event", "hybrid"), ("hybrid", "polling"), ("polling", "hybrid"), ("hybrid", "event")]
    first = source.mode_switches.order_by("at", "id").first()
    assert first is not None and first.signals["health"]["penalties"]["missed_pushes"] > 0


def issue_of(handle: SimulatorHandle, dataset_key: str) -> dict[str, Any]:
    record = handle.sim.dataset.get(dataset_key)
    assert record is not None
    profile: Any = handle.sim.profile
    return profile.issue(record.key, record.data, record.created_s, record.updated_s)


# -- reconciliation by the full listing ----------------------------------------------------------------


def test_reconciliation_deletes_a_record_removed_upstream_and_repairs_silent_edits(
    github: SimulatorHandle, in_acme: object
) -> None:
    # given: every issue held locally; then one is deleted and one edited upstream without a word
    github.sim.dataset.seed_records(30)
    params = {"state": "all", "sort": "updated", "direction": "asc", "per_page": "7"}
    source = rest_source(github_config(github, params=params))
    poll(source)
    records = github.sim.dataset.records()
    gone, edited = records[3], records[11]
    github.sim.dataset.delete(gone.key, silent=True)
    github.sim.dataset.upsert(edited.key, {**edited.data, "qty": 99}, silent=True)
    gone_id = str(2_100_000_000 + int(gone.key.removeprefix("rec-")))
    # when
    run = run_now(Source.objects.get(pk=source.pk))
    # then
    assert (run.status, run.mode) == ("succeeded", "full")
    assert (run.upstream_count, run.local_count, run.deleted, run.changed, run.missing) == (29, 30, 1, 1, 0)
    assert run.pages_fetched == 5  # the full listing, without since: 29 issues, 7 a page
    assert Record.objects.get(source_id=source.pk, key=gone_id).deleted is True
    assert set(Change.objects.filter(source_id=source.pk, origin="reconcile").values_list("type", flat=True)) == {
        "upsert",
        "delete",
    }
    # and a second run finds nothing left to correct
    again = run_now(Source.objects.get(pk=source.pk))
    assert (again.deleted, again.changed, again.missing, again.corrections) == (0, 0, 0, 0)


def test_reconciliation_reads_the_snapshot_listing_when_one_is_given(stripe: SimulatorHandle, in_acme: object) -> None:
    # given: polled through Stripe's events, reconciled against its customers list
    stripe.sim.dataset.seed_records(12)
    config = {
        "base_url": stripe.base_url,
        "list_path": "/v1/events",
        "params": {"type": "customer.*", "limit": "100"},
        "records": "data",
        "pagination": {"style": "cursor", "next": "has_more && data[-1].id", "param": "starting_after"},
        "since_param": "created[gte]",
        "since_field": "created",
        "since_format": "unix",
        "key": "data.object.id",
        "version": "created",
        "op": "type == 'customer.deleted' && 'delete' || 'upsert'",
        "data": "data.object",
        "snapshot": {"path": "/v1/customers", "params": {"limit": "5"}, "records": "data", "key": "id",
                     "version": "created"},
        "timeout_s": 2.0,
    }  # fmt: skip
    source = rest_source(config, "customers")
    poll(source)
    victim = stripe.sim.dataset.records()[0]
    stripe.sim.dataset.delete(victim.key, silent=True)
    # when
    run = run_now(Source.objects.get(pk=source.pk))
    # then
    assert (run.status, run.upstream_count, run.deleted, run.pages_fetched) == ("succeeded", 11, 1, 3)
    assert requests(stripe, "customers") == {"customers.ok": 3}


def test_a_reconciliation_that_meets_a_spent_rate_limit_applies_nothing(in_acme: object) -> None:
    # given: the window will close after one request and reopen only in a minute and more
    with serving("github", owner=OWNER, repo=REPO, rate_limit=1, rate_window_s=120) as handle:
        handle.sim.dataset.seed_records(20)
        params = {"state": "all", "sort": "updated", "direction": "asc", "per_page": "10"}
        source = rest_source(github_config(handle, params=params))
        with transaction.atomic(), connection.cursor() as cursor:  # held locally, one more than upstream
            extra = validate([{"id": "x", "type": "upsert", "key": "local-only", "version": 1, "data": {}}])
            service.commit(cursor, [PendingBatch(source_id=source.pk, events=extra.events, origin="push")])
        # when
        run = run_now(Source.objects.get(pk=source.pk))
        # then: no deletion from a partial listing, and the reset is the failure's Retry-After
        assert (run.status, run.error_kind, run.corrections) == ("failed", "rate_limited", 0)
        assert Record.objects.get(source_id=source.pk, key="local-only").deleted is False
        assert requests(handle) == {"issues.ok": 1}
        failure = FailureRecord.objects.get(source_id=source.pk, kind="rate_limited")
        assert failure.detail["retry_after_s"] > 60


# -- with a real worker and beat's entry point -----------------------------------------------------------


@pytest.fixture
def committed_rest_source(
    github: SimulatorHandle, personas: dict[str, Persona], django_db_blocker: Any
) -> Iterator[int]:
    """A committed rest source on the github simulator in acme, in event mode, dated an hour back."""
    tenant = personas["alice"].tenant
    with django_db_blocker.unblock(), tenant_context(tenant):
        source = rest_source(github_config(github), f"rest-{uuid.uuid4().hex[:8]}", poll={"audit_interval_s": 60})
    try:
        yield source.pk
    finally:
        with django_db_blocker.unblock(), tenant_context(tenant):
            found = Source.objects.filter(pk=source.pk).first()
            if found is not None:
                sources.source_delete(source=found)
        use_public()


@pytest.mark.e2e
def test_beats_dispatch_sends_an_audit_poll_to_a_worker_for_a_rest_source_in_event_mode(
    github: SimulatorHandle,
    personas: dict[str, Persona],
    committed_rest_source: int,
    django_db_blocker: Any,
    celery_worker: None,
) -> None:
    # given: a rest source in event mode never audited, 5 issues upstream push never delivered
    tenant = personas["alice"].tenant
    source_id = committed_rest_source
    github.sim.dataset.seed_records(5)

    def runs() -> list[PollRun]:
        with django_db_blocker.unblock(), tenant_context(tenant):
            return list(PollRun.objects.filter(source_id=source_id))

    # when: what beat sends
    app.send_task(str(settings.CELERY_BEAT_SCHEDULE["polls-dispatch"]["task"]))
    # then
    wait_for(lambda: bool(runs()), timeout=30, interval=0.1)
    [run] = runs()
    assert (run.trigger, run.status, run.changes, run.missed) == ("audit", PollStatus.SUCCEEDED, 5, 5)
    with django_db_blocker.unblock(), tenant_context(tenant):
        state = StreamState.objects.get(pk=source_id)
        assert (state.polled_missed, state.last_audit_at is not None) == (5, True)
        assert Record.objects.filter(source_id=source_id).count() == 5
