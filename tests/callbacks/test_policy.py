"""Delivery decisions, without a database."""

from __future__ import annotations

import pytest

from callbacks.policy import DeliveryPolicy, counts_against_breaker, retry_delay, should_disable
from callbacks.signing import signature_header, verify_signature

POLICY = DeliveryPolicy(backoff_base_s=1, backoff_max_s=60, retry_after_cap_s=600)


def test_the_backoff_doubles_per_failure_up_to_its_cap() -> None:
    caps = [retry_delay(failures=n, policy=POLICY, rand=lambda: 1.0) for n in range(1, 9)]
    assert caps == [1, 2, 4, 8, 16, 32, 60, 60]


def test_the_jitter_is_full_anywhere_between_zero_and_the_cap() -> None:
    assert retry_delay(failures=4, policy=POLICY, rand=lambda: 0.0) == 0
    assert retry_delay(failures=4, policy=POLICY, rand=lambda: 0.5) == 4


def test_retry_after_is_a_floor_and_is_capped() -> None:
    assert retry_delay(failures=1, policy=POLICY, retry_after_s=30, rand=lambda: 1.0) == 30
    assert retry_delay(failures=7, policy=POLICY, retry_after_s=5, rand=lambda: 1.0) == 60
    assert retry_delay(failures=1, policy=POLICY, retry_after_s=86_400, rand=lambda: 0.0) == 600


def test_only_silence_and_server_errors_count_against_the_breaker() -> None:
    assert counts_against_breaker(None) and counts_against_breaker(500) and counts_against_breaker(503)
    assert not counts_against_breaker(429) and not counts_against_breaker(404)


def test_a_subscription_is_disabled_only_when_failing_both_often_and_long() -> None:
    policy = DeliveryPolicy(disable_after_failures=10, disable_after_s=1800)
    assert not should_disable(failures=50, failing_for_s=60, policy=policy)
    assert not should_disable(failures=3, failing_for_s=7200, policy=policy)
    assert should_disable(failures=10, failing_for_s=1800, policy=policy)


def test_settings_build_a_policy_and_unknown_keys_are_refused() -> None:
    policy = DeliveryPolicy.from_mapping({"batch_size": 5, "breaker": {"failure_threshold": 2}})
    assert policy.batch_size == 5 and policy.breaker.failure_threshold == 2
    with pytest.raises(ValueError, match="unknown"):
        DeliveryPolicy.from_mapping({"batch": 5})
    with pytest.raises(ValueError):
        DeliveryPolicy.from_mapping({"batch_size": 0})


def test_a_signature_is_refused_when_stale_or_for_another_body() -> None:
    header = signature_header("cbsec_x", b'{"changes":[]}', timestamp=1_000)
    assert verify_signature("cbsec_x", header, b'{"changes":[]}', now=1_100)
    assert not verify_signature("cbsec_x", header, b'{"changes":[]}', now=2_000)
    assert not verify_signature("cbsec_x", header, b'{"changes":[1]}', now=1_100)
    assert not verify_signature("cbsec_x", "v1=abc", b"", now=1_000)
