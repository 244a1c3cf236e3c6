"""Helpers for the reconciliation tests: sources on a simulated upstream, mirrored records, runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection, transaction

from engines.ingest import service
from engines.ingest.commit import PendingBatch
from engines.ingest.plan import record_hash
from engines.ingest.validation import validate
from engines.models import ReconcileTrigger, ReconciliationRun, Record, Source
from engines.reconcile.engine import DEFAULT_TUNING, Tuning, reconcile_execute
from engines.reconcile.runs import reconcile_request
from simulator.dataset import Dataset
from simulator.runner import build_simulator
from simulator.server import SimulatorApp
from simulator.state import Simulator
from tests.factories import make_source
from tests.simulator.support import serve_asgi

State = dict[str, tuple[int, str]]


def config_for(base_url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "poll_url": f"{base_url}/changes",
        "snapshot_url": f"{base_url}/snapshot",
        "timeout_s": 2.0,
        "page_limit": 100,
        **overrides,
    }


def source_on(base_url: str, name: str = "orders", *, reconcile: dict[str, Any] | None = None, **config: Any) -> Source:
    source, _ = make_source(name, config=config_for(base_url, **config), reconcile=reconcile or {})
    return source


def push(source_id: int, raw: list[dict[str, Any]]) -> None:
    """What the ingest endpoint does with a valid push."""
    for start in range(0, len(raw), 1000):
        batch = validate(raw[start : start + 1000])
        assert not batch.errors, batch.errors
        with transaction.atomic(), connection.cursor() as cursor:
            service.commit(cursor, [PendingBatch(source_id=source_id, events=batch.events, origin="push")])


def mirror(source_id: int, dataset: Dataset) -> None:
    """Push the upstream's current records, so the two sides start equal."""
    push(
        source_id,
        [
            {"id": f"seed-{n}-{r.version}", "type": "upsert", "key": r.key, "version": r.version, "data": r.data}
            for n, r in enumerate(dataset.records())
        ],
    )


def upstream_state(dataset: Dataset) -> State:
    return {r.key: (r.version, r.hash) for r in dataset.records()}


def local_state(source_id: int) -> State:
    rows = Record.objects.filter(source_id=source_id, deleted=False).values_list("key", "version", "hash")
    return {key: (version, hash_) for key, version, hash_ in rows}


def run_now(source: Source, *, tuning: Tuning = DEFAULT_TUNING) -> ReconciliationRun:
    """Start a run and execute it here (its queued task never leaves a rolled-back test)."""
    run, created = reconcile_request(source=source, trigger=ReconcileTrigger.MANUAL)
    assert created
    done = reconcile_execute(run_id=run.pk, tuning=tuning)
    assert done is not None
    return done


class WithoutDigests:
    """An upstream that speaks docs/contract.md §6 without the optional digests (or without sub-bucket ones)."""

    def __init__(self, app: SimulatorApp, *, sub_buckets_only: bool = False) -> None:
        self.app = app
        self.sub_buckets_only = sub_buckets_only

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        query = scope.get("query_string", b"") if scope["type"] == "http" else b""
        refused = b"digest=1" in query and (not self.sub_buckets_only or b"bucket=" in query)
        if not refused:
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"no digests here"})


@contextmanager
def upstream_without_digests(*, sub_buckets_only: bool = False) -> Iterator[tuple[str, Simulator]]:
    sim = build_simulator(mutations_per_s=0.0, run_id="nodigest")
    with serve_asgi(WithoutDigests(SimulatorApp(sim), sub_buckets_only=sub_buckets_only)) as url:
        yield url, sim


def data(n: int) -> dict[str, Any]:
    return {"status": "paid", "qty": n, "note": "café"}


def hash_of(n: int) -> str:
    return record_hash(data(n))
