"""Commit -> publish -> wake -> a real Celery worker -> the endpoint, and the sweep."""

from __future__ import annotations

import time

from callbacks import wake
from callbacks.models import Delivery
from callbacks.signing import verify_signature
from callbacks.tasks import callbacks_sweep_task
from engines import publish
from scheduling.services import tenant_wake
from tests.callbacks.support import CommittedWorld, Receiver


def test_committed_changes_reach_the_endpoint_through_a_worker_and_the_sweep_catches_the_rest(
    acme_world: CommittedWorld, receiver: Receiver, celery_worker: None
) -> None:
    # given: a subscription from now on; no wake of an earlier test pending
    schema = acme_world.tenant.schema_name
    wake.wake_taken(schema)
    source = acme_world.source("orders")
    subscription_id, secret = acme_world.subscription(receiver.url, sources=[source])
    # when: a batch commits and the commit path publishes it
    changes = acme_world.changes(source, 5)
    publish.changes_committed(schema, changes)
    # then: the worker, woken for the tenant, delivers it signed and in order
    expected = [change["seq"] for change in changes]
    assert receiver.wait_for_seqs(5) == expected
    first = receiver.requests[0]
    assert verify_signature(secret, first.headers["x-beastflow-signature"], first.body, now=time.time())
    assert first.json()["changes"] == changes

    # when: changes commit without a wake (say Redis lost it), then the clock sweeps
    missed = acme_world.changes(source, 2)
    tenant_wake(schema=schema, sweep=True)  # its sweep is due (beat, if one runs, may take it first)
    callbacks_sweep_task()
    # then
    assert receiver.wait_for_seqs(7)[5:] == [change["seq"] for change in missed]
    assert _delivered_count(acme_world, subscription_id, expect=7) == 7


def _delivered_count(world: CommittedWorld, subscription_id: int, *, expect: int) -> int:
    # The endpoint saw the request before the worker recorded its answer.
    def count() -> int:
        rows = Delivery.objects.filter(subscription_id=subscription_id, status="succeeded")
        return sum(rows.values_list("count", flat=True))

    deadline = time.monotonic() + 10
    while (delivered := world.run(count)) < expect and time.monotonic() < deadline:
        time.sleep(0.05)
    return delivered
