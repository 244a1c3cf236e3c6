"""BeastFlow's own outages (engines/watch.py): the silence inside one is not the upstream's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from beastflow.redis_client import get_redis, key
from engines.models import Source, StreamState
from engines.tasks import monitor_claim_task
from engines.watch import outage_key, outage_of, outage_parse, stamp_key, watch_stamp
from scheduling.models import SourceSchedule
from tests.factories import make_source


@pytest.fixture
def watched(settings: object, in_acme: object) -> Iterator[None]:
    settings.BEASTFLOW_MONITOR_OUTAGE_S = 60.0  # type: ignore[attr-defined]
    SourceSchedule.objects.update(next_eval_at=None, next_poll_at=None, next_reconcile_at=None)
    client = get_redis()
    names = [stamp_key(), outage_key(), *client.keys(key("monitor", "*"))]
    client.delete(*names)
    yield
    client.delete(stamp_key(), outage_key())


def _at(seconds_ago: float) -> datetime:
    return datetime.fromtimestamp(time.time() - seconds_ago, tz=UTC)


def _pushing(name: str, *, last_push_ago: float) -> Source:
    """A stream with a 10 s rhythm (30 s of silence allowed), created an hour ago, due now."""
    source, _ = make_source(name, config={"poll_url": "http://127.0.0.1:9/changes", "expected_interval_s": 10})
    Source.objects.filter(pk=source.pk).update(created_at=_at(3600))
    StreamState.objects.filter(source=source).update(last_push_at=_at(last_push_ago))
    SourceSchedule.objects.filter(pk=source.pk).update(next_eval_at=timezone.now() - timedelta(seconds=1))
    return source


def _outages() -> float:
    return REGISTRY.get_sample_value("beastflow_monitor_outages_total") or 0.0


def _counts(source: Source) -> tuple[int, int]:
    state = Source.objects.get(pk=source.pk).hysteresis_state
    return state.get("good", 0), state.get("bad", 0)


def test_an_outage_is_a_gap_between_passes_longer_than_the_threshold() -> None:
    assert outage_of(None, 1000.0, threshold_s=60) is None  # no stamp: nothing known, nothing forgiven
    assert outage_of(950.0, 1000.0, threshold_s=60) is None
    assert outage_of(900.0, 1000.0, threshold_s=60) == (900.0, 1000.0)
    assert outage_of(900.0, 1000.0, threshold_s=0) is None  # off
    assert outage_parse(b"900.5,1000.25") == (900.5, 1000.25)
    assert outage_parse(b"1000,900") is None and outage_parse(b"junk") is None and outage_parse(None) is None


def test_passes_in_a_row_record_no_outage_and_a_late_one_records_it(watched: None) -> None:
    now = time.time()
    before = _outages()
    assert watch_stamp(now=now - 200) is None  # the first stamp ever
    assert watch_stamp(now=now - 199) is None
    assert get_redis().get(outage_key()) is None
    # when: the next pass comes 199 s later
    outage = watch_stamp(now=now)
    # then
    assert outage == (now - 199, now)
    assert outage_parse(get_redis().get(outage_key())) == pytest.approx((now - 199, now))
    assert _outages() == before + 1


def test_after_an_outage_silence_inside_it_is_not_counted_but_silence_before_it_is(watched: None) -> None:
    # given: the last pass before BeastFlow went down was 580 s ago; one stream pushed 20 s before
    # that, the other had been silent 300 s by then (ten times what it is allowed)
    resumed = _pushing("resumed", last_push_ago=600)
    dead = _pushing("dead-before", last_push_ago=880)
    get_redis().set(stamp_key(), repr(time.time() - 580))
    # when: the monitor's first pass on its return
    judged = monitor_claim_task()
    # then: 20 s of silence counted for the first (30 s allowed), 300 s for the second
    assert judged == 2
    assert _counts(resumed) == (1, 0)
    assert _counts(dead) == (0, 1)
    recorded = outage_parse(get_redis().get(outage_key()))
    assert recorded is not None and recorded[1] - recorded[0] == pytest.approx(580, abs=5)


def test_without_a_stamp_to_compare_with_the_whole_silence_counts(watched: None) -> None:
    # given: the same stream, but nothing says BeastFlow was down (a first start, or Redis lost the stamp)
    resumed = _pushing("resumed", last_push_ago=600)
    # when
    assert monitor_claim_task() == 1
    # then
    assert _counts(resumed) == (0, 1)
    assert get_redis().get(outage_key()) is None
