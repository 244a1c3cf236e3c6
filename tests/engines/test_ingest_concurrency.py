"""Seq order under concurrency: a reader paging with `after` never misses a change.

Writers and the reader run in threads, each with its own database
connection, against committed data, as they would in production.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

import pytest
from django.db import connection, connections, transaction
from django_tenants.utils import tenant_context

from engines.ingest.commit import PendingBatch
from engines.ingest.service import commit
from engines.ingest.validation import Event
from engines.models import SeqCounter
from engines.selectors import changes_after
from tests.conftest import Persona

WRITERS = 4
BATCHES_PER_WRITER = 25
EVENTS_PER_BATCH = 20


def _event(writer: int, batch: int, n: int) -> Event:
    return Event(
        id=f"w{writer}-b{batch}-{n}",
        type="upsert",
        key=f"w{writer}-{n}",
        version=batch + 1,
        data={"writer": writer, "batch": batch},
        seq=None,
        occurred_at=None,
    )


def test_a_concurrent_reader_sees_every_change_exactly_once_in_seq_order(
    personas: dict[str, Persona], committed_source: tuple[int, str], django_db_blocker: pytest.FixtureRequest
) -> None:
    # given
    tenant = personas["alice"].tenant
    source_id = committed_source[0]
    with django_db_blocker.unblock(), tenant_context(tenant):  # type: ignore[attr-defined]
        start = SeqCounter.objects.get().last
    done = threading.Event()
    seen: list[int] = []
    stamps: list[str] = []
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            with tenant_context(tenant):
                for batch in range(BATCHES_PER_WRITER):
                    events = [_event(number, batch, n) for n in range(EVENTS_PER_BATCH)]
                    with transaction.atomic(), connection.cursor() as cursor:
                        commit(cursor, [PendingBatch(source_id=source_id, events=events)])
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    def reader() -> None:
        after = start
        try:
            with tenant_context(tenant):
                while True:
                    finished = done.is_set()  # read before the page: a last full pass follows the end
                    page = changes_after(after, source_id=source_id, limit=37)
                    for change in page:
                        seen.append(change["seq"])
                        stamps.append(change["committed_at"])
                        after = change["seq"]
                    if finished and not page:
                        return
                    if not page:
                        time.sleep(0.001)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    # when
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        reading = threading.Thread(target=reader)
        reading.start()
        writing = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
        for thread in writing:
            thread.start()
        for thread in writing:
            thread.join()
        done.set()
        reading.join(timeout=60)

    # then
    assert not errors, errors
    total = WRITERS * BATCHES_PER_WRITER * EVENTS_PER_BATCH
    assert len(seen) == total
    assert seen == sorted(seen)
    assert seen == list(range(start + 1, start + total + 1)), "the reader skipped or repeated a seq"
    times = [datetime.fromisoformat(stamp) for stamp in stamps]
    assert times == sorted(times), "committed_at went backwards along seq"
