"""Helpers for callback and stream tests: a real HTTP receiver and change rows.

Changes are inserted the way the commit path does it: seqs from SeqCounter
(under its row lock), rows in the tenant schema, rendered in the feed's
item shape.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from engines.models import Change
from engines.selectors import change_render
from tenants.models import Tenant
from tests.conftest import Persona
from tests.threads import on_own_connection

T = TypeVar("T")


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def seqs(self) -> list[int]:
        return [change["seq"] for change in self.json()["changes"]]


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    """A real endpoint on 127.0.0.1 that records every POST and answers as scripted."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        # Called in the server's thread with each request, before it is answered.
        self.on_request: Callable[[Received], None] | None = None
        self._script: list[Reply] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
                if receiver.on_request is not None:
                    receiver.on_request(received)
                with receiver._lock:
                    receiver.requests.append(received)
                    reply = receiver._script.pop(0) if receiver._script else Reply()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def answer(self, *replies: Reply) -> None:
        """The next requests get these replies, in order; then 200s."""
        with self._lock:
            self._script.extend(replies)

    def seqs(self) -> list[int]:
        return [seq for request in self.requests for seq in request.seqs]

    def wait_for_seqs(self, count: int, timeout_s: float = 15.0) -> list[int]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(set(self.seqs())) < count:
            time.sleep(0.02)
        return self.seqs()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def receiver_fixture() -> Iterator[Receiver]:
    receiver = Receiver()
    try:
        yield receiver
    finally:
        receiver.close()


def call_api(persona: Persona, method: str, path: str, body: Any = None) -> Any:
    """An API call from a test that works in a tenant schema: the middleware
    leaves the connection on public, so the test's schema is put back."""
    tenant = connection.tenant  # type: ignore[attr-defined]
    try:
        return getattr(persona.client(), method)(path, body, format="json")
    finally:
        connection.set_tenant(tenant)  # type: ignore[attr-defined]


def insert_changes(source_id: int, count: int, *, key_prefix: str = "k") -> list[dict[str, Any]]:
    """Insert `count` changes of a source in the current schema; returns them rendered.

    One transaction, like the commit path: the counter's row lock is held
    until the changes are committed with it (readers rely on that).
    """
    with transaction.atomic():
        return _insert_changes(source_id, count, key_prefix)


def _insert_changes(source_id: int, count: int, key_prefix: str) -> list[dict[str, Any]]:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE engines_seqcounter SET last = last + %s WHERE id = 1 RETURNING last", [count])
        last = cursor.fetchone()[0]
    now = timezone.now()
    rows = [
        Change(
            seq=seq,
            source_id=source_id,
            event_id=f"evt-{seq}",
            type="upsert",
            key=f"{key_prefix}-{seq}",
            version=1,
            data={"n": seq},
            origin="push",
            committed_at=now,
        )
        for seq in range(last - count + 1, last + 1)
    ]
    Change.objects.bulk_create(rows)
    return [change_render(row) for row in rows]


def committed(tenant: Tenant, work: Callable[[], T]) -> T:
    """Run `work` in the tenant's schema on a connection of its own, committed at once.

    The test's own connection is inside a transaction that is rolled back;
    websocket consumers and Celery workers see only committed rows.
    """

    def in_tenant() -> T:
        with tenant_context(tenant):
            return work()

    return on_own_connection(in_tenant)


class CommittedWorld:
    """Sources, changes and subscriptions committed in a tenant, removed by `close()`.

    For tests whose other side (a websocket consumer's thread, a Celery
    worker, an HTTP handler) has a connection of its own.
    """

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.source_ids: list[int] = []
        self.subscription_ids: list[int] = []

    def run(self, work: Callable[[], T]) -> T:
        return committed(self.tenant, work)

    def source(self, name: str) -> int:
        from tests.factories import make_source

        source_id = self.run(lambda: make_source(f"{name}-{time.monotonic_ns()}")[0].pk)
        self.source_ids.append(source_id)
        return source_id

    def changes(self, source_id: int, count: int) -> list[dict[str, Any]]:
        return self.run(lambda: insert_changes(source_id, count))

    def subscription(self, url: str, **kwargs: Any) -> tuple[int, str]:
        from callbacks import services

        subscription, secret = self.run(
            lambda: services.subscription_create(
                url=url, sources=kwargs.get("sources"), from_seq=kwargs.get("from_seq")
            )
        )
        self.subscription_ids.append(subscription.pk)
        return subscription.pk, secret

    def close(self) -> None:
        from callbacks import services
        from callbacks.models import Subscription
        from engines import sources
        from engines.models import Source
        from healing.models import FailureRecord

        def clean() -> None:
            fingerprints = [services.failure_fingerprint(pk) for pk in self.subscription_ids]
            FailureRecord.objects.filter(fingerprint__in=fingerprints).delete()
            Subscription.objects.filter(pk__in=self.subscription_ids).delete()
            for source in Source.objects.filter(pk__in=self.source_ids):
                sources.source_delete(source=source)

        try:
            self.run(clean)
        except IntegrityError:
            # A monitor tick (another session's worker) wrote a row for the
            # source while it was being deleted: once more, after it.
            time.sleep(0.2)
            self.run(clean)


def committed_world_fixture(tenant: Tenant) -> Iterator[CommittedWorld]:
    world = CommittedWorld(tenant)
    try:
        yield world
    finally:
        world.close()
