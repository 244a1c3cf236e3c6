"""Outbound deliveries to a real HTTP endpoint, run in-process in the test's transaction."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from callbacks import services
from callbacks.models import Delivery, DeliveryStatus, Subscription, SubscriptionStatus
from callbacks.policy import DeliveryPolicy
from callbacks.signing import verify_signature
from engines.models import SeqCounter, Source
from engines.polling_policy import BreakerPolicy
from healing.models import FailureKind, FailureRecord, FailureStatus
from tests.callbacks.support import Receiver, Reply, call_api, insert_changes
from tests.conftest import Persona

# No jitter (always the full backoff cap) and a breaker that stays out of the way.
FULL = lambda: 1.0  # noqa: E731
QUIET_BREAKER = BreakerPolicy(failure_threshold=1000)


def _subscribe(url: str, *sources: Source) -> tuple[Subscription, str]:
    # Always to given sources: another test session may commit to this tenant meanwhile.
    return services.subscription_create(url=url, sources=[source.pk for source in sources], from_seq=None)


def _run(subscription: Subscription, at: datetime, policy: DeliveryPolicy | None = None) -> services.DeliveryResult:
    policy = policy or DeliveryPolicy(breaker=QUIET_BREAKER)
    return services.subscription_deliver(subscription_id=subscription.pk, now=at, policy=policy, rand=FULL)


def test_a_batch_is_posted_as_json_signed_with_the_subscriptions_secret(orders: Source, receiver: Receiver) -> None:
    # given
    subscription, secret = _subscribe(receiver.url, orders)
    changes = insert_changes(orders.pk, 3)
    at = timezone.now()
    # when
    result = _run(subscription, at)
    # then
    assert result.batches == 1
    [request] = receiver.requests
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-beastflow-subscription"] == str(subscription.pk)
    signature = request.headers["x-beastflow-signature"]
    assert signature.startswith(f"t={int(at.timestamp())},v1=")
    assert verify_signature(secret, signature, request.body, now=at.timestamp())
    assert not verify_signature(secret, signature, request.body + b" ", now=at.timestamp())
    assert not verify_signature("cbsec_other", signature, request.body, now=at.timestamp())
    assert request.json() == {"changes": changes}


def test_changes_arrive_in_seq_order_in_batches_and_the_cursor_follows(orders: Source, receiver: Receiver) -> None:
    # given
    subscription, _ = _subscribe(receiver.url, orders)
    expected = [change["seq"] for change in insert_changes(orders.pk, 10)]
    # when
    _run(subscription, timezone.now(), DeliveryPolicy(batch_size=3, breaker=QUIET_BREAKER))
    # then
    assert [len(request.seqs) for request in receiver.requests] == [3, 3, 3, 1]
    assert receiver.seqs() == expected
    subscription.refresh_from_db()
    assert subscription.cursor == expected[-1]
    assert subscription.delivered_changes == 10
    assert Delivery.objects.filter(subscription=subscription, status=DeliveryStatus.SUCCEEDED).count() == 4


def test_only_the_subscribed_sources_changes_are_delivered(
    orders: Source, invoices: Source, receiver: Receiver
) -> None:
    # given
    subscription, _ = _subscribe(receiver.url, invoices)
    wanted: list[int] = []
    for _ in range(3):
        insert_changes(orders.pk, 2)
        wanted += [change["seq"] for change in insert_changes(invoices.pk, 2)]
    # when
    _run(subscription, timezone.now())
    # then
    assert receiver.seqs() == wanted
    assert {change["source"] for request in receiver.requests for change in request.json()["changes"]} == {invoices.pk}


def test_a_failed_batch_is_retried_after_the_backoff_then_not_sent_again(orders: Source, receiver: Receiver) -> None:
    # given
    subscription, _ = _subscribe(receiver.url, orders)
    expected = [change["seq"] for change in insert_changes(orders.pk, 4)]
    receiver.answer(Reply(500))
    policy = DeliveryPolicy(backoff_base_s=10, breaker=QUIET_BREAKER)
    t0 = timezone.now()
    # when: the first attempt fails
    first = _run(subscription, t0, policy)
    # then: nothing moves, the retry waits for the backoff
    subscription.refresh_from_db()
    assert first.failed
    assert subscription.cursor == expected[0] - 1
    assert subscription.failures == 1
    assert subscription.next_attempt_at == t0 + timedelta(seconds=10)
    assert _run(subscription, t0 + timedelta(seconds=5), policy).retry_in_s == 5
    assert len(receiver.requests) == 1
    # when: it is due again
    _run(subscription, t0 + timedelta(seconds=11), policy)
    _run(subscription, t0 + timedelta(seconds=12), policy)
    # then: the same batch once more, and never again after its 2xx
    assert [request.seqs for request in receiver.requests] == [expected, expected]
    subscription.refresh_from_db()
    assert subscription.cursor == expected[-1] and subscription.failures == 0
    assert subscription.next_attempt_at is None
    attempts = list(Delivery.objects.filter(subscription=subscription).order_by("id"))
    assert [(d.attempt, d.status, d.http_status) for d in attempts] == [
        (1, DeliveryStatus.FAILED, 500),
        (2, DeliveryStatus.SUCCEEDED, 200),
    ]
    assert attempts[0].error == "HTTP 500: ok"  # the start of the endpoint's answer


def test_retry_after_on_a_429_is_a_floor_under_the_backoff(orders: Source, receiver: Receiver) -> None:
    # given
    subscription, _ = _subscribe(receiver.url, orders)
    insert_changes(orders.pk, 2)
    receiver.answer(Reply(429, {"Retry-After": "120"}))
    t0 = timezone.now()
    # when
    _run(subscription, t0)
    # then
    subscription.refresh_from_db()
    assert subscription.next_attempt_at == t0 + timedelta(seconds=120)
    assert Delivery.objects.get(subscription=subscription).retry_after_s == 120
    _run(subscription, t0 + timedelta(seconds=60))
    assert len(receiver.requests) == 1
    _run(subscription, t0 + timedelta(seconds=121))
    assert len(receiver.requests) == 2
    subscription.refresh_from_db()
    assert subscription.failures == 0


def test_a_connection_refused_is_a_failure_that_is_retried(orders: Source, receiver: Receiver) -> None:
    # given: nothing listens on that port any more
    receiver.close()
    subscription, _ = _subscribe(receiver.url, orders)
    insert_changes(orders.pk, 1)
    # when
    _run(subscription, timezone.now())
    # then
    subscription.refresh_from_db()
    delivery = Delivery.objects.get(subscription=subscription)
    assert delivery.http_status is None and delivery.status == DeliveryStatus.FAILED
    assert "ConnectError" in delivery.error
    assert subscription.failures == 1 and subscription.next_attempt_at is not None


def test_a_subscription_failing_long_enough_is_disabled_with_one_folded_failure_record(
    alice: Persona, orders: Source, receiver: Receiver
) -> None:
    # given: 3 failures in a row over at least 60 s disable it
    subscription, _ = _subscribe(receiver.url, orders)
    insert_changes(orders.pk, 1)
    policy = DeliveryPolicy(
        backoff_base_s=1, backoff_max_s=1, disable_after_failures=3, disable_after_s=60, breaker=QUIET_BREAKER
    )
    receiver.answer(*[Reply(503)] * 7)
    failures = FailureRecord.objects.filter(fingerprint=services.failure_fingerprint(subscription.pk))
    t0 = timezone.now()
    # when: three quick failures are not enough
    for offset in (0, 10, 20):
        _run(subscription, t0 + timedelta(seconds=offset), policy)
    subscription.refresh_from_db()
    assert subscription.status == SubscriptionStatus.ACTIVE
    assert not failures.exists()
    # when: the fourth, 70 s after the first
    _run(subscription, t0 + timedelta(seconds=70), policy)
    # then
    subscription.refresh_from_db()
    assert subscription.status == SubscriptionStatus.DISABLED
    assert "4 failed attempts" in subscription.disabled_reason
    [failure] = failures.all()  # a fresh query each time
    assert failure.kind == FailureKind.CALLBACK_FAILING and failure.status == FailureStatus.OPEN
    assert failure.occurrences == 1 and failure.source_id is None
    assert failure.detail["subscription"] == subscription.pk and failure.detail["http_status"] == 503
    assert _run(subscription, t0 + timedelta(seconds=200), policy).batches == 0  # disabled: left alone
    assert len(receiver.requests) == 4
    # when: enabled again, it keeps failing
    enabled = call_api(alice, "post", f"/api/v1/subscriptions/{subscription.pk}/enable")
    assert enabled.status_code == 200 and enabled.json()["status"] == "active"
    t1 = t0 + timedelta(seconds=300)
    for offset in (0, 30, 61):
        _run(subscription, t1 + timedelta(seconds=offset), policy)
    # then: the same open failure, one more occurrence
    subscription.refresh_from_db()
    assert subscription.status == SubscriptionStatus.DISABLED
    [failure] = failures.all()  # a fresh query each time
    assert failure.occurrences == 2
    # when: enabled once more, the endpoint is back
    call_api(alice, "post", f"/api/v1/subscriptions/{subscription.pk}/enable")
    _run(subscription, t1 + timedelta(seconds=400), policy)
    # then: delivered, and the failure is over
    [failure] = failures.all()  # a fresh query each time
    assert failure.status == FailureStatus.RESOLVED
    assert len(receiver.requests) == 8


def test_a_worker_without_the_lease_sends_nothing_until_the_lease_expires(orders: Source, receiver: Receiver) -> None:
    # given: another worker holds the lease
    subscription, _ = _subscribe(receiver.url, orders)
    insert_changes(orders.pk, 2)
    t0 = timezone.now()
    Subscription.objects.filter(pk=subscription.pk).update(
        lease_token="another-worker", lease_until=t0 + timedelta(seconds=60)
    )
    # when
    busy = services.subscription_deliver(subscription_id=subscription.pk, now=t0)
    # then
    assert busy.busy and receiver.requests == []
    # when: that worker died and its lease ran out
    after = services.subscription_deliver(subscription_id=subscription.pk, now=t0 + timedelta(seconds=61))
    # then
    assert after.batches == 1 and len(receiver.requests) == 1
    subscription.refresh_from_db()
    assert subscription.lease_token == "" and subscription.lease_until is None


def test_a_replay_delivers_again_from_the_given_seq(alice: Persona, orders: Source, receiver: Receiver) -> None:
    # given: everything was delivered
    subscription, _ = _subscribe(receiver.url, orders)
    seqs = [change["seq"] for change in insert_changes(orders.pk, 5)]
    _run(subscription, timezone.now())
    # when
    replayed = call_api(alice, "post", f"/api/v1/subscriptions/{subscription.pk}/replay", {"from_seq": seqs[2]})
    _run(subscription, timezone.now())
    # then
    assert replayed.status_code == 202
    assert replayed.json()["cursor"] == seqs[1]
    assert [request.seqs for request in receiver.requests] == [seqs, seqs[2:]]


def test_a_replay_from_below_the_retention_floor_is_refused_not_shortened(
    alice: Persona, orders: Source, receiver: Receiver
) -> None:
    # given: retention dropped the changes up to the third one
    subscription, _ = _subscribe(receiver.url, orders)
    seqs = [change["seq"] for change in insert_changes(orders.pk, 5)]
    _run(subscription, timezone.now())
    SeqCounter.objects.filter(pk=1).update(floor=seqs[2])
    # when
    below = call_api(alice, "post", f"/api/v1/subscriptions/{subscription.pk}/replay", {"from_seq": seqs[1]})
    at_floor = call_api(alice, "post", f"/api/v1/subscriptions/{subscription.pk}/replay", {"from_seq": seqs[3]})
    # then
    assert below.status_code == 410
    assert below.json()["errors"] == [{"field": "from_seq", "message": f"must be at least {seqs[2] + 1}"}]
    assert at_floor.status_code == 202 and at_floor.json()["cursor"] == seqs[2]
