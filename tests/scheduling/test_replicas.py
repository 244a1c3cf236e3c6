"""Replicas: two web processes and two workers at once; nothing acknowledged is lost, nothing is done twice.

A client that does not hear back retries on another replica: every event
here is sent to both web processes at once, from several clients. Each must
be stored once, commit once (one change, seqs dense), and reach the
subscription's endpoint once, delivered by whichever worker took it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from callbacks.models import Subscription
from engines import sources
from engines.models import Change, Event, Source
from tests.callbacks.support import Receiver
from tests.conftest import Persona, web_server
from tests.factories import make_source
from tests.scheduling.test_many_processes import Processes, processes, wait_for

pytestmark = pytest.mark.e2e
__all__ = ["processes"]  # the fixture, imported for this module's tests

EVENTS = 240


def _signed(secret: str, body: bytes) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-BeastFlow-Signature": f"sha256={digest}", "Content-Type": "application/json"}


async def _push_everywhere(urls: list[str], secret: str, run: str) -> Counter[int]:
    """Each event to every web process at once, eight at a time; the statuses seen."""
    statuses: Counter[int] = Counter()
    gate = asyncio.Semaphore(8)
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(n: int) -> None:
            body = json.dumps(
                {"id": f"{run}-{n}", "type": "upsert", "key": f"k{n % 37}", "version": n, "data": {"n": n}}
            ).encode()
            async with gate:
                answers = await asyncio.gather(
                    *(client.post(url, content=body, headers=_signed(secret, body)) for url in urls)
                )
            statuses.update(answer.status_code for answer in answers)

        await asyncio.gather(*(one(n) for n in range(EVENTS)))
    return statuses


def test_two_web_processes_and_two_workers_store_commit_and_deliver_each_event_once(
    personas: dict[str, Persona], django_db_blocker: Any, processes: Callable[..., Processes]
) -> None:
    # given: a source and a Redis namespace of this test's own, shared by its web processes and workers
    alice = personas["alice"]
    run = uuid.uuid4().hex[:8]
    with django_db_blocker.unblock(), tenant_context(alice.tenant):
        source, secret = make_source(f"replicas-{run}")
        connection.close()
    group = processes()
    receiver = Receiver()
    auth = {"Authorization": f"Bearer {alice.api_key}"}
    try:
        with (
            web_server(env={"BEASTFLOW_REDIS_PREFIX": group.prefix}) as one,
            web_server(env={"BEASTFLOW_REDIS_PREFIX": group.prefix}) as two,
        ):
            made = httpx.post(
                f"{one}/api/v1/subscriptions", json={"url": receiver.url, "sources": [source.pk]}, headers=auth
            )
            assert made.status_code == 201, made.text
            group.worker("one")
            group.worker("two")

            # when: every event goes to both web processes at the same moment
            urls = [f"{base}/api/v1/sources/{source.pk}/events" for base in (one, two)]
            statuses = asyncio.run(_push_everywhere(urls, secret, run))

            # then: every request acknowledged (the second of a pair as a duplicate)
            assert set(statuses) <= {200, 201, 202}, statuses
            assert sum(statuses.values()) == 2 * EVENTS

            # and each event stored once, committed once, in one dense run of seqs
            with django_db_blocker.unblock(), tenant_context(alice.tenant):
                ids = Counter(Event.objects.filter(source_id=source.pk).values_list("event_id", flat=True))
                seqs = list(Change.objects.filter(source_id=source.pk).order_by("seq").values_list("seq", flat=True))
                connection.close()
            assert len(ids) == EVENTS and set(ids.values()) == {1}
            assert len(seqs) == EVENTS and len(set(seqs)) == EVENTS

            # and the endpoint sees each change once, from whichever worker delivered it
            wait_for(lambda: len(receiver.seqs()) >= EVENTS, timeout_s=60, what="every change delivered")
            # a duplicate would be a delivery still queued: wait until none is left to run
            wait_for(
                lambda: group.queue_length("callbacks") == 0 and group.queue_length("celery") == 0,
                timeout_s=30,
                what="the callbacks queue to drain",
            )
            delivered = Counter(receiver.seqs())
            assert sorted(delivered) == seqs
            assert set(delivered.values()) == {1}, [seq for seq, n in delivered.items() if n > 1]
    finally:
        receiver.close()
        with django_db_blocker.unblock(), tenant_context(alice.tenant):
            found = Source.objects.filter(pk=source.pk).first()
            if found is not None:
                sources.source_delete(source=found)
            # Committed, so not rolled back: the tenant's subscription tests count what is stored.
            Subscription.objects.filter(url=receiver.url).delete()
            connection.close()
