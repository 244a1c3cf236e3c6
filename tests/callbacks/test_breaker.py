"""The endpoint's circuit breaker, watched from the endpoint itself.

Deliveries run committed here, so that the receiving endpoint can read the
subscription's state (from its own connection) while a request is in flight.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connections
from django.utils import timezone
from django_tenants.utils import tenant_context

from callbacks import services
from callbacks.models import Subscription
from callbacks.policy import DeliveryPolicy
from engines.polling_policy import BreakerPolicy
from tests.callbacks.support import CommittedWorld, Received, Receiver, Reply

POLICY = DeliveryPolicy(
    batch_size=1,
    backoff_base_s=0.001,
    backoff_max_s=0.001,
    breaker=BreakerPolicy(failure_threshold=2, cooldown_s=30, max_cooldown_s=600),
)


def _near(value: datetime | None, expected: datetime) -> bool:
    # Breaker times go through float timestamps: equal to the microsecond or so.
    return value is not None and abs(value - expected) < timedelta(milliseconds=1)


def test_the_breaker_opens_after_failures_refuses_calls_then_half_opens_for_one_probe(
    acme_world: CommittedWorld, receiver: Receiver
) -> None:
    # given: the endpoint reports the breaker state it sees with each request
    source = acme_world.source("orders")
    subscription_id, _ = acme_world.subscription(receiver.url, sources=[source])
    seqs = [change["seq"] for change in acme_world.changes(source, 3)]
    seen: list[str] = []

    def breaker_during_request(_: Received) -> None:
        with tenant_context(acme_world.tenant):
            seen.append(Subscription.objects.get(pk=subscription_id).breaker_status)
        connections.close_all()

    receiver.on_request = breaker_during_request
    receiver.answer(Reply(500), Reply(502), Reply(503))
    t0 = timezone.now()

    def run(after_s: float) -> None:
        at = t0 + timedelta(seconds=after_s)
        acme_world.run(lambda: services.subscription_deliver(subscription_id=subscription_id, now=at, policy=POLICY))

    def state() -> Subscription:
        return acme_world.run(lambda: Subscription.objects.get(pk=subscription_id))

    # when: two failures in a row
    run(0)
    run(1)
    # then: open for the cool-down, whatever the backoff says
    opened = state()
    assert opened.breaker_status == "open"
    assert _near(opened.next_attempt_at, t0 + timedelta(seconds=31))
    acme_world.run(lambda: Subscription.objects.filter(pk=subscription_id).update(next_attempt_at=None))
    run(10)
    assert len(receiver.requests) == 2  # refused by the breaker itself
    assert _near(state().next_attempt_at, t0 + timedelta(seconds=31))

    # when: the cool-down is over, one probe goes out, half-open; it fails
    run(31)
    # then: open again, for twice as long
    assert seen == ["closed", "closed", "half_open"]
    reopened = state()
    assert reopened.breaker_status == "open" and reopened.breaker["trips"] == 2
    assert _near(reopened.next_attempt_at, t0 + timedelta(seconds=91))
    run(60)
    assert len(receiver.requests) == 3

    # when: the next probe succeeds
    run(91)
    # then: closed, and the rest follows in the same run, in order
    assert seen[3] == "half_open" and seen[4:] == ["closed", "closed"]
    closed = state()
    assert closed.breaker_status == "closed" and closed.cursor == seqs[-1]
    assert [request.seqs for request in receiver.requests] == [[seqs[0]]] * 4 + [[seqs[1]], [seqs[2]]]
