"""Wakes of a tenant's delivery task: debounced, skipped for idle tenants, never lost."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from beastflow.redis_client import get_redis
from callbacks import wake

SCHEMA = "t_acme"


@pytest.fixture(autouse=True)
def _clean_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    keys = [wake.wake_key(SCHEMA), wake.idle_key(SCHEMA), wake.generation_key(SCHEMA)]
    get_redis().delete(*keys)
    # The delivery tasks a wake sends, recorded rather than sent: a worker of the
    # session would take one and call wake_taken between two asserts.
    sent: list[str] = []
    monkeypatch.setattr(wake, "_enqueue", lambda schema, **_: sent.append(schema))
    yield sent
    get_redis().delete(*keys)


def test_one_task_is_queued_until_it_starts_then_the_next_wake_queues_another(_clean_keys: list[str]) -> None:
    assert wake.wake_deliveries(SCHEMA)
    assert not wake.wake_deliveries(SCHEMA)  # one is queued already
    wake.wake_taken(SCHEMA)
    assert wake.wake_deliveries(SCHEMA)
    assert _clean_keys == [SCHEMA, SCHEMA]


def test_an_idle_tenant_is_not_woken_until_a_subscription_changes() -> None:
    # given
    generation = wake.idle_generation(SCHEMA)
    assert wake.mark_idle(SCHEMA, generation=generation)
    # then
    assert not wake.wake_deliveries(SCHEMA)
    # when
    wake.subscriptions_changed(SCHEMA)
    # then
    assert not get_redis().exists(wake.idle_key(SCHEMA))


def test_a_task_that_looked_before_a_subscription_was_created_cannot_mark_the_tenant_idle() -> None:
    # given: a task read the generation, then found no active subscription...
    generation = wake.idle_generation(SCHEMA)
    # ...while one was created and committed
    wake.subscriptions_changed(SCHEMA)
    # when
    marked = wake.mark_idle(SCHEMA, generation=generation)
    # then: not idle, so the next commit's wake goes through (a wake a live worker
    # may have queued meanwhile for acme is beside the point: the idle mark is checked)
    assert not marked
    assert not get_redis().exists(wake.idle_key(SCHEMA))


def test_a_sweep_that_finds_an_active_subscription_drops_a_stale_idle_mark(in_acme: object) -> None:
    from callbacks.models import Subscription
    from callbacks.tasks import callbacks_deliver_task

    # given: acme marked idle, and a subscription whose invalidation never reached Redis
    assert wake.mark_idle(SCHEMA, generation=wake.idle_generation(SCHEMA))
    Subscription.objects.create(url="http://127.0.0.1:9/stale-idle", secret_encrypted="x")
    assert not wake.wake_deliveries(SCHEMA)
    # a woken run leaves the mark alone (it got past it, so none is stale; one Redis call saved per run)
    callbacks_deliver_task.run()
    assert get_redis().exists(wake.idle_key(SCHEMA))
    # when: a sweep (scheduled in PostgreSQL, so never lost with the mark) finds it
    callbacks_deliver_task.run(sweep=True)
    # then: commits wake deliveries again
    assert not get_redis().exists(wake.idle_key(SCHEMA))
    assert wake.wake_deliveries(SCHEMA)


def test_a_sweep_of_a_tenant_without_active_subscriptions_delivers_nothing_and_prunes_only_if_any(
    in_acme: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from callbacks import services
    from callbacks.models import Subscription, SubscriptionStatus
    from callbacks.tasks import callbacks_deliver_task
    from scheduling.models import TenantSchedule

    # given: no subscription at all; a delivery run or a prune would be queries for nothing
    Subscription.objects.all().delete()
    pruned: list[int] = []
    monkeypatch.setattr(services, "deliveries_run", lambda **_: pytest.fail("a delivery run without subscriptions"))
    monkeypatch.setattr(services, "deliveries_prune", lambda **_: pruned.append(1) or 0)
    schedule = TenantSchedule.objects.filter(tenant_id=connection.tenant.pk)
    schedule.update(next_sweep_at=None)
    before = timezone.now()
    # when
    callbacks_deliver_task.run(sweep=True)
    # then: idle, nothing pruned, the next sweep within the idle period (not at the claim's lease's end)
    assert pruned == [] and get_redis().exists(wake.idle_key(SCHEMA))
    due = schedule.get().next_sweep_at
    assert due is not None
    assert (due - before).total_seconds() >= 0.8 * settings.BEASTFLOW_CALLBACKS_IDLE_SWEEP_S - 1
    # and: with a disabled subscription its old deliveries are pruned, still nothing is delivered
    Subscription.objects.create(url="http://127.0.0.1:9/off", secret_encrypted="x", status=SubscriptionStatus.DISABLED)
    callbacks_deliver_task.run(sweep=True)
    assert pruned == [1]
    assert services.subscriptions_present() == (True, False)
