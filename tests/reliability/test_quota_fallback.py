"""The quota while Redis cannot be asked: the same bucket in the process, behind a breaker."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from engines.ingest import quota
from engines.ingest.quota import LocalBuckets, TokenBucket
from tests.reliability.support import free_port


def test_the_local_bucket_lets_the_burst_through_then_refuses_with_the_time_to_refill() -> None:
    # given
    buckets = LocalBuckets()
    # when
    decisions = buckets.take_each("acme", [4, 4, 4], rate=2.0, burst=10, now=100.0)
    # then
    assert [d.allowed for d in decisions] == [True, True, False]
    assert decisions[2].retry_after_s == 1  # 2 tokens left, 4 needed, 2 per second


def test_the_local_bucket_refills_at_the_rate_up_to_the_burst() -> None:
    buckets = LocalBuckets()
    buckets.take_each("acme", [10], rate=2.0, burst=10, now=100.0)
    assert not buckets.take_each("acme", [3], rate=2.0, burst=10, now=101.0)[0].allowed
    assert buckets.take_each("acme", [3], rate=2.0, burst=10, now=101.5)[0].allowed
    # a long pause refills to the burst, not beyond
    assert [d.allowed for d in buckets.take_each("acme", [10, 1], rate=2.0, burst=10, now=1000.0)] == [True, False]


def test_a_batch_above_the_burst_passes_on_a_full_bucket_as_in_redis() -> None:
    buckets = LocalBuckets()
    assert buckets.take_each("acme", [50], rate=1.0, burst=10, now=0.0)[0].allowed
    assert not buckets.take_each("acme", [1], rate=1.0, burst=10, now=0.5)[0].allowed


def test_each_process_allows_its_share_of_the_tenant_quota() -> None:
    buckets = LocalBuckets()
    decisions = buckets.take_each("acme", [1] * 6, rate=10.0, burst=10, now=0.0, share=0.5)
    assert [d.allowed for d in decisions] == [True] * 5 + [False]


def test_tenants_have_buckets_of_their_own() -> None:
    buckets = LocalBuckets()
    buckets.take_each("acme", [10], rate=1.0, burst=10, now=0.0)
    assert buckets.take_each("globex", [10], rate=1.0, burst=10, now=0.0)[0].allowed


@pytest.fixture
def breaker_closed() -> Iterator[None]:
    quota._breaker.open_until = 0.0
    yield
    quota._breaker.open_until = 0.0


def test_an_unreachable_redis_falls_back_to_the_local_bucket_and_is_not_asked_again_at_once(
    breaker_closed: None,
) -> None:
    # given: a Redis port nobody listens on
    client = quota.client(f"redis://127.0.0.1:{free_port()}/0")
    bucket = TokenBucket(client, "bftest-quota")
    failures = quota.QUOTA_REDIS_FAILURES._value.get()
    # when
    started = time.perf_counter()
    first = bucket.take_each("acme-fallback", [3, 3], rate=1.0, burst=5)
    second = bucket.take("acme-fallback", 1, rate=1.0, burst=5)
    elapsed = time.perf_counter() - started
    # then: decided in the process, one Redis failure for both (the breaker is open)
    assert [d.allowed for d in first] == [True, False]
    assert second.allowed  # the 2 tokens the first left
    assert quota.QUOTA_REDIS_FAILURES._value.get() == failures + 1
    assert quota._breaker.is_open()
    assert elapsed < 1.0


def test_redis_is_asked_again_once_the_breaker_closes(breaker_closed: None) -> None:
    # given: the test Redis, answering, and a breaker opened by an earlier failure
    from django.conf import settings

    from beastflow.redis_client import get_redis

    client = get_redis()
    bucket = TokenBucket(client, settings.REDIS_PREFIX)
    name = f"{settings.REDIS_PREFIX}:quota:acme-breaker"
    client.delete(name)
    quota._breaker.open_until = time.monotonic() + 60
    # when / then: decided in the process, Redis untouched
    assert bucket.take("acme-breaker", 1, rate=1.0, burst=5).allowed
    assert not client.exists(name)
    # when the breaker closed / then: the bucket lives in Redis again
    quota._breaker.open_until = 0.0
    assert bucket.take("acme-breaker", 1, rate=1.0, burst=5).allowed
    assert float(client.hget(name, "t") or 0) == 4.0
