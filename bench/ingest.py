"""How fast events get in, against the ingest targets, in one run on this machine.

`make bench` (or `.venv/bin/python bench/ingest.py [--duration S] [--no-two-workers] [--strict]`).

Sets up its own world (bench/_world.py): a fresh `beastflow_bench` database on
DATABASE_URL's server, migrated; tenants bench-a and bench-b (quota lifted:
this measures capacity); sources through the API; the real server
`uvicorn beastflow.asgi:application --no-access-log`, 1 worker. Then:

0. the load generator's own ceiling against a trivial ASGI app (raw client and httpx);
1. batch ingest, 1,000-event batches, one tenant: events/s;
2. the same with two tenants at once: events/s per tenant (target >= 10,000 each);
3. single-event webhooks signed with the source's secret, 32 concurrent: events/s;
3b. native GitHub-shaped single pushes (scheme github: an `issues` delivery signed
   X-Hub-Signature-256, read by the source's push mapping, docs/push.md) against
   BeastFlow single events (small ones, and ones carrying the same issue as
   data), alternated on the same server, 32 concurrent: the rates and ratios
   (`--native-only` runs just this phase);
4. the naive baseline (DRF CreateAPIView + ORM save, bench/_naive_urls.py) on the
   same uvicorn command, 32 concurrent: events/s; ratio 3/4 (target >= 3);
5. raw COPY into a copy of engines_event: rows/s; batch ingest as a share of it;
6. paced 1,000 events/s (100 x 10-event batches/s, then 1,000 single events/s):
   ingest latency p50/p99 and commit-to-websocket p50/p99 (target p99 <= 10 ms);
7. phases 2-4 again with `--workers 2`.

Every event is an upsert of a new key, so each one is an event row, a record
row and a change: the heaviest ordinary case. After each phase the database
is checked to hold exactly the acknowledged events and changes.
Prints a table and writes .beastflow/bench/ingest.json. Cleans up (servers,
database, Redis keys) on success, failure and Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import json
import platform
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import msgspec
import psutil
import uvloop

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._changes import ChangeWatcher
from bench._client import LoopLag, Request, Tally, closed_loop, httpx_closed_loop, paced, percentile
from bench._cpu import CpuMeter, CpuUse
from bench._report import build_targets, integrity, other_cpu, print_native, print_table, say
from bench._world import OUT_DIR, ConnectionsMeter, Server, Source, Tenant, World, log

BATCH_SIZE = 1_000
BATCH_CONCURRENCY = 4  # per tenant; group commit merges what queues (up to 5,000 events a commit)
SINGLE_CONCURRENCY = 32
PACED_EVENTS_PER_S = 1_000
PACED_POOL = 128  # connections: enough that the client never caps what is in flight
COPY_ROWS = 200_000
OCCURRED_AT = "2026-11-26T10:00:00Z"
GITHUB_SECRET = "bench-github-webhook-secret"  # noqa: S105  (the bench's own throwaway source)
# The github-issues push mapping (docs/push.md): what a GitHub-shaped source runs per request.
GITHUB_PUSH = {
    "scheme": "github",
    "secret": GITHUB_SECRET,
    "mapping": {
        "filter": "headers.\"x-github-event\" == 'issues'",
        "id": 'headers."x-github-delivery"',
        "key": "body.issue.id",
        "version": "body.issue.updated_at",
        "op": "body.action == 'deleted' && 'delete' || 'upsert'",
        "data": "body.issue",
    },
}
ISSUE_ID_MARK = 987_654_321_987_654  # replaced by a new issue id per request
GITHUB_EXAMPLES = Path(".beastflow/npm-upstreams/node_modules/@octokit/webhooks-examples/api.github.com/index.json")


_encode = msgspec.json.Encoder().encode


# Requests -----------------------------------------------------------------


class Feed:
    """Events for one source; ids, keys and seqs never repeat within a run."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.next = 0

    def take(self, count: int) -> list[dict[str, Any]]:
        first, self.next = self.next, self.next + count
        return [
            {
                "id": f"{self.name}-{n}",
                "type": "upsert",
                "key": f"{self.name}-k{n}",
                "version": 1,
                "seq": n + 1,
                "occurred_at": OCCURRED_AT,
                "data": {"total": n / 4, "status": "paid", "items": n % 7, "customer": f"c-{n % 997}"},
            }
            for n in range(first, first + count)
        ]


_feeds: dict[int, Feed] = {}
_acked: dict[int, int] = {}  # per source, over the whole run: what its tables must hold


def feed_of(source: Source) -> Feed:
    """One feed per source for the whole run, so a later phase never resends an earlier id."""
    if source.id not in _feeds:
        _feeds[source.id] = Feed(f"e{source.id}")
    return _feeds[source.id]


def batches(tenant: Tenant, source: Source, size: int, *, track: bool = False) -> Callable[[], Request]:
    feed = feed_of(source)
    path = f"/api/v1/sources/{source.id}/events"
    headers = (("Authorization", f"Bearer {tenant.api_key}"), ("Content-Type", "application/json"))

    def make() -> Request:
        events = feed.take(size)
        ids = tuple(e["id"] for e in events) if track else ()
        return Request("POST", path, _encode({"events": events}), headers, events=size, ids=ids)

    return make


def signed_singles(source: Source, *, track: bool = False) -> Callable[[], Request]:
    feed = feed_of(source)
    path = f"/api/v1/sources/{source.id}/events"
    secret = source.secret.encode()

    def make() -> Request:
        event = feed.take(1)[0]
        body = _encode(event)
        signature = hmac.new(secret, body, hashlib.sha256).hexdigest()
        headers = (("Content-Type", "application/json"), ("X-BeastFlow-Signature", f"sha256={signature}"))
        return Request("POST", path, body, headers, events=1, ids=(event["id"],) if track else ())

    return make


def github_issue_payload() -> tuple[dict[str, Any], str]:
    """An `issues` delivery body and where it came from.

    GitHub's own example (@octokit/webhooks-examples, `issues` / `edited`),
    installed outside git by the tests' helper (tests/upstream_packages.py);
    where npm cannot reach its registry, a body of the same shape written here.
    """
    path = Path(__file__).resolve().parent.parent / GITHUB_EXAMPLES
    if not path.is_file():
        try:
            from tests.upstream_packages import ensure_installed

            ensure_installed()
        except Exception as exc:  # the bench still runs, and says what it sent
            log(f"GitHub's example payloads are not available ({exc}); sending a payload of the same shape")
    if path.is_file():
        examples = next(e["examples"] for e in json.loads(path.read_text()) if e["name"] == "issues")
        return next(e for e in examples if e["action"] == "edited"), "@octokit/webhooks-examples issues/edited"
    user = {"login": "octocat", "id": 1, "type": "User", "url": "https://api.github.com/users/octocat"}
    issue = {"id": 1, "number": 1, "title": "Spelling error in the README file", "user": user, "state": "open",
             "labels": [{"id": 1362934389, "name": "bug", "color": "d73a4a"}], "comments": 0,
             "created_at": OCCURRED_AT, "updated_at": OCCURRED_AT, "body": "It looks like you spelled 'commit'"
             " with two 't's. " * 20, "url": "https://api.github.com/repos/octo-org/hello/issues/1"}  # fmt: skip
    repository = {"id": 186853002, "full_name": "octo-org/hello", "owner": user, "private": False,
                  "description": "A repository. " * 100, "default_branch": "main"}  # fmt: skip
    return {"action": "edited", "issue": issue, "repository": repository, "sender": user}, "built-in, GitHub-shaped"


def github_singles(source: Source, payload: dict[str, Any]) -> Callable[[], Request]:
    """GitHub `issues` deliveries, each a new issue (a new key) and a new delivery id, signed as GitHub signs."""
    path = f"/api/v1/sources/{source.id}/events"
    secret = GITHUB_SECRET.encode()
    issue = {**payload["issue"], "id": ISSUE_ID_MARK, "updated_at": OCCURRED_AT}
    template = _encode({**payload, "action": "edited", "issue": issue})
    mark = str(ISSUE_ID_MARK).encode()
    assert template.count(mark) == 1
    head, tail = template.split(mark)
    numbers = itertools.count(1)

    def make() -> Request:
        n = next(numbers)
        body = head + str(n).encode() + tail
        signature = hmac.new(secret, body, hashlib.sha256).hexdigest()
        headers = (
            ("Content-Type", "application/json"),
            ("User-Agent", "GitHub-Hookshot/bench"),
            ("X-GitHub-Event", "issues"),
            ("X-GitHub-Delivery", f"bench-{source.id}-{n}"),
            ("X-Hub-Signature-256", f"sha256={signature}"),
        )
        return Request("POST", path, body, headers, events=1)

    return make


def signed_issue_singles(source: Source, payload: dict[str, Any]) -> Callable[[], Request]:
    """BeastFlow single events carrying the same issue as `data`: the native shape's records, no mapping."""
    path = f"/api/v1/sources/{source.id}/events"
    secret = source.secret.encode()
    mark = "ISSUE-KEY-MARK"
    issue = {**payload["issue"], "updated_at": OCCURRED_AT}
    template = _encode(
        {"id": mark, "type": "upsert", "key": mark, "version": 1, "occurred_at": OCCURRED_AT, "data": issue}
    )
    assert template.count(mark.encode()) == 2
    head, middle, tail = template.split(mark.encode())
    numbers = itertools.count(1)

    def make() -> Request:
        n = str(next(numbers)).encode()
        body = head + b"i-" + n + middle + b"k-" + n + tail
        signature = hmac.new(secret, body, hashlib.sha256).hexdigest()
        headers = (("Content-Type", "application/json"), ("X-BeastFlow-Signature", f"sha256={signature}"))
        return Request("POST", path, body, headers, events=1)

    return make


def naive_singles(tenant: Tenant, source: Source) -> Callable[[], Request]:
    feed = feed_of(source)
    path = f"/naive/sources/{source.id}/events"
    headers = (("Authorization", f"Bearer {tenant.api_key}"), ("Content-Type", "application/json"))

    def make() -> Request:
        return Request("POST", path, _encode(feed.take(1)[0]), headers, events=1)

    return make


def health_checks() -> Callable[[], Request]:
    request = Request("GET", "/healthz", events=1)
    return lambda: request


def trivial_singles() -> Callable[[], Request]:
    feed = Feed("t")
    headers = (("Content-Type", "application/json"), ("X-BeastFlow-Signature", "sha256=" + "0" * 64))

    def make() -> Request:
        return Request("POST", "/api/v1/sources/1/events", _encode(feed.take(1)[0]), headers, events=1)

    return make


# Figures ------------------------------------------------------------------


def rnd(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def ratio(numerator: float | None, denominator: float | None, digits: int = 2) -> float | None:
    if numerator is None or not denominator or denominator <= 0:
        return None
    return round(numerator / denominator, digits)


def throughput(tally: Tally, cpu: CpuUse | None = None, **extra: Any) -> dict[str, Any]:
    figure = {
        "events_per_s": rnd(tally.events_per_s),
        "requests_per_s": rnd(tally.requests_per_s),
        "requests": tally.requests,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "errors": tally.errors,
        "latency_p50_ms": rnd(tally.percentile_ms(50), 2),
        "latency_p99_ms": rnd(tally.percentile_ms(99), 2),
        **extra,
    }
    if cpu is not None:
        figure["cpu_cores"] = cpu.as_dict()
    if tally.first_problem:
        figure["first_problem"] = tally.first_problem
    return figure


def check_stored(world: World, tenant: Tenant, source: Source, tally: Tally, *, changes: bool = True) -> dict[str, Any]:
    """The database holds exactly the acknowledged events (and one change each), none was a duplicate."""
    _acked[source.id] = _acked.get(source.id, 0) + tally.acked
    expected = _acked[source.id]
    with world.connect() as conn:
        events = conn.execute(
            f"SELECT count(*) FROM {tenant.schema}.engines_event WHERE source_id = %s",  # noqa: S608 (our schema name)
            [source.id],
        ).fetchone()
        stored_changes = conn.execute(
            f"SELECT count(*) FROM {tenant.schema}.engines_change WHERE source_id = %s",  # noqa: S608
            [source.id],
        ).fetchone()
    result: dict[str, Any] = {
        "acked_in_phase": tally.acked,
        "acked_in_run": expected,
        "duplicates": tally.duplicates,
        "events_stored": events[0] if events else None,
    }
    if changes:
        result["changes_stored"] = stored_changes[0] if stored_changes else None
    result["ok"] = (
        tally.duplicates == 0
        and result["events_stored"] == expected
        and (not changes or result["changes_stored"] == expected)
    )
    return result


def last_seq(world: World, tenant: Tenant) -> int:
    with world.connect() as conn:
        row = conn.execute(f"SELECT last FROM {tenant.schema}.engines_seqcounter WHERE id = 1").fetchone()  # noqa: S608
    return int(row[0]) if row else 0


# Phases -------------------------------------------------------------------


async def phase_client_ceiling(world: World, duration: float) -> dict[str, Any]:
    server = world.start_server("trivial", "bench._trivial_app:application", health="/")
    try:
        with CpuMeter(server.proc.pid) as raw_cpu:
            raw = await closed_loop(
                server.port, trivial_singles(), concurrency=SINGLE_CONCURRENCY, duration_s=duration, warmup_s=0.5
            )
        with CpuMeter(server.proc.pid) as httpx_cpu:
            via_httpx = await httpx_closed_loop(
                server.port, trivial_singles(), concurrency=SINGLE_CONCURRENCY, duration_s=duration
            )
    finally:
        world.stop_server(server)
    say(f"  client ceiling, raw asyncio client: {raw.requests_per_s:,.0f} req/s; {raw_cpu.result.describe()}")
    say(f"  client ceiling, httpx:              {via_httpx.requests_per_s:,.0f} req/s; {httpx_cpu.result.describe()}")
    return {
        "raw_client": throughput(raw, raw_cpu.result),
        "httpx": throughput(via_httpx, httpx_cpu.result),
    }


async def phase_batch(
    world: World, server: Server, pairs: list[tuple[Tenant, Source]], duration: float
) -> dict[str, Any]:
    with CpuMeter(server.proc.pid) as cpu, ConnectionsMeter(world) as connections:
        tallies = await asyncio.gather(
            *(
                closed_loop(
                    server.port,
                    batches(tenant, source, BATCH_SIZE),
                    concurrency=BATCH_CONCURRENCY,
                    duration_s=duration,
                    warmup_s=1.0,
                )
                for tenant, source in pairs
            )
        )
    per_tenant = {}
    for (tenant, source), tally in zip(pairs, tallies, strict=True):
        per_tenant[tenant.slug] = throughput(
            tally, stored=check_stored(world, tenant, source, tally), concurrency=BATCH_CONCURRENCY
        )
    rates = [t.events_per_s for t in tallies]
    say(
        f"  batch x{len(pairs)} tenant(s): "
        + ", ".join(f"{slug} {fig['events_per_s']:,.0f} ev/s" for slug, fig in per_tenant.items())
        + f"; {cpu.result.describe()}; db connections peak {connections.peak}"
    )
    return {
        "per_tenant": per_tenant,
        "min_per_tenant_events_per_s": rnd(min(rates)),
        "total_events_per_s": rnd(sum(rates)),
        "cpu_cores": cpu.result.as_dict(),
        "db_connections_peak": connections.peak,
    }


async def phase_single(world: World, server: Server, tenant: Tenant, source: Source, duration: float) -> dict[str, Any]:
    with CpuMeter(server.proc.pid) as cpu, ConnectionsMeter(world) as connections:
        tally = await closed_loop(
            server.port, signed_singles(source), concurrency=SINGLE_CONCURRENCY, duration_s=duration, warmup_s=1.0
        )
    figure = throughput(
        tally,
        cpu.result,
        stored=check_stored(world, tenant, source, tally),
        concurrency=SINGLE_CONCURRENCY,
        db_connections_peak=connections.peak,
    )
    say(
        f"  single-event webhooks: {tally.events_per_s:,.0f} ev/s; {cpu.result.describe()}; "
        f"db connections peak {connections.peak}"
    )
    return figure


def merged(tallies: list[Tally]) -> Tally:
    """Several runs of one shape as one: events and requests over the sum of their measured times."""
    total = Tally(started=0.0, finished=sum(t.elapsed for t in tallies))
    for tally in tallies:
        total.requests += tally.requests
        total.events += tally.events
        total.errors += tally.errors
        total.acked += tally.acked
        total.duplicates += tally.duplicates
        total.latencies += tally.latencies
        total.first_problem = total.first_problem or tally.first_problem
        for status, count in tally.statuses.items():
            total.statuses[status] = total.statuses.get(status, 0) + count
    return total


NATIVE_ROUNDS = 2


async def phase_native(world: World, server: Server, tenant: Tenant, duration: float) -> dict[str, Any]:
    """BeastFlow single events and native GitHub pushes, alternated A B A B on one server, half the duration each.

    Alternating spreads whatever else the shared machine does over both shapes.
    """
    payload, origin = github_issue_payload()
    sources = {
        "beastflow_single": tenant.sources["single-ref"],
        "beastflow_single_issue": tenant.sources["single-issue"],
        "github_native_single": tenant.sources["native-github"],
    }
    shapes = {
        "beastflow_single": signed_singles(sources["beastflow_single"]),
        "beastflow_single_issue": signed_issue_singles(sources["beastflow_single_issue"], payload),
        "github_native_single": github_singles(sources["github_native_single"], payload),
    }
    sizes = {label: len(make().body) for label, make in shapes.items()}  # a sample of each (ids are not reused)
    runs: dict[str, list[tuple[Tally, CpuUse]]] = {label: [] for label in shapes}
    for _ in range(NATIVE_ROUNDS):
        for label, make in shapes.items():
            with CpuMeter(server.proc.pid) as cpu:
                tally = await closed_loop(
                    server.port, make, concurrency=SINGLE_CONCURRENCY, duration_s=duration / 2, warmup_s=0.5
                )
            runs[label].append((tally, cpu.result))
    figures: dict[str, Any] = {"payload": origin, "body_bytes": sizes, "rounds": NATIVE_ROUNDS}
    for label, shape_runs in runs.items():
        total = merged([tally for tally, _ in shape_runs])
        figures[label] = throughput(
            total,
            stored=check_stored(world, tenant, sources[label], total),
            concurrency=SINGLE_CONCURRENCY,
            runs_events_per_s=[rnd(tally.events_per_s) for tally, _ in shape_runs],
            cpu_runs=[cpu.as_dict() for _, cpu in shape_runs],
        )
    native_rate = figures["github_native_single"]["events_per_s"]
    figures["ratio_native_vs_beastflow"] = ratio(native_rate, figures["beastflow_single"]["events_per_s"])
    # The same record size without a mapping: what the mapping itself costs.
    figures["ratio_native_vs_beastflow_issue"] = ratio(native_rate, figures["beastflow_single_issue"]["events_per_s"])
    say(
        "  "
        + "; ".join(f"{label} {figures[label]['events_per_s']:,.0f} ev/s ({sizes[label]} B bodies)" for label in shapes)
        + f"; ratios native/small {figures['ratio_native_vs_beastflow']}, "
        f"native/with the issue {figures['ratio_native_vs_beastflow_issue']} ({origin})"
    )
    return figures


async def phase_naive(world: World, server: Server, tenant: Tenant, source: Source, duration: float) -> dict[str, Any]:
    with CpuMeter(server.proc.pid) as cpu, ConnectionsMeter(world) as connections:
        tally = await closed_loop(
            server.port,
            naive_singles(tenant, source),
            concurrency=SINGLE_CONCURRENCY,
            duration_s=duration,
            warmup_s=1.0,
        )
    figure = throughput(
        tally,
        cpu.result,
        stored=check_stored(world, tenant, source, tally, changes=False),
        concurrency=SINGLE_CONCURRENCY,
        db_connections_peak=connections.peak,
    )
    say(
        f"  naive baseline: {tally.events_per_s:,.0f} ev/s; {cpu.result.describe()}; "
        f"db connections peak {connections.peak}"
    )
    # For scale: what this server's Django path does with a view that does nothing.
    with CpuMeter(server.proc.pid) as floor_cpu:
        floor = await closed_loop(
            server.port, health_checks(), concurrency=SINGLE_CONCURRENCY, duration_s=min(duration, 3.0), warmup_s=0.5
        )
    figure["django_floor_healthz"] = throughput(floor, floor_cpu.result)
    say(f"  Django floor (GET /healthz, same server): {floor.requests_per_s:,.0f} req/s; {floor_cpu.result.describe()}")
    return figure


async def phase_paced(world: World, server: Server, tenant: Tenant, duration: float) -> dict[str, Any]:
    after = last_seq(world, tenant)
    watcher = ChangeWatcher(server.port, tenant.api_key, after)
    refused = await watcher.start()
    if refused:
        say(f"  websocket: n/a (consumer missing: {refused})")
    shapes = [
        ("batches_of_10", "paced-10", PACED_EVENTS_PER_S / 10, lambda s: batches(tenant, s, 10, track=True)),
        ("single_events", "paced-1", PACED_EVENTS_PER_S, lambda s: signed_singles(s, track=True)),
    ]
    figures: dict[str, Any] = {"events_per_s": PACED_EVENTS_PER_S}
    try:
        for label, name, rate, make in shapes:
            source = tenant.sources[name]
            with CpuMeter(server.proc.pid) as cpu, ConnectionsMeter(world) as connections:
                async with LoopLag() as lag:
                    tally = await paced(
                        server.port, make(source), rate_per_s=rate, duration_s=duration, pool=PACED_POOL
                    )
            figure = throughput(tally, cpu.result, requests_per_s_target=rate, db_connections_peak=connections.peak)
            figure["client_loop_lag_p50_ms"] = rnd(lag.percentile_ms(50), 2)
            figure["client_loop_lag_p99_ms"] = rnd(lag.percentile_ms(99), 2)
            figure["stored"] = check_stored(world, tenant, source, tally)
            if refused:
                figure["websocket"] = {"status": f"n/a (consumer missing: {refused})"}
            else:
                complete = await watcher.wait_for(source.id, tally.acked, timeout_s=5.0)
                samples = watcher.latencies.get(source.id, [])
                # The 202 leaves after the commit, the frame after the publish: their gap is
                # the publish path alone, on one clock (negative when the frame came first).
                after_ack = [
                    watcher.arrived_at[event_id] - answered
                    for event_id, answered in tally.answered_at.items()
                    if event_id in watcher.arrived_at
                ]
                figure["websocket"] = {
                    "status": "ok" if complete else "incomplete",
                    "received": len(samples),
                    "expected": tally.acked,
                    "p50_ms": rnd(percentile(samples, 50) * 1000, 2) if samples else None,
                    "p99_ms": rnd(percentile(samples, 99) * 1000, 2) if samples else None,
                    "max_ms": rnd(max(samples) * 1000, 2) if samples else None,
                    "after_http_answer_p50_ms": rnd(percentile(after_ack, 50) * 1000, 2) if after_ack else None,
                    "after_http_answer_p99_ms": rnd(percentile(after_ack, 99) * 1000, 2) if after_ack else None,
                }
                if not samples:
                    figure["websocket"]["status"] = "n/a (connected, but no change arrived)"
            ws = figure["websocket"]
            say(
                f"  paced {label}: ingest p50 {figure['latency_p50_ms']} ms p99 {figure['latency_p99_ms']} ms; "
                f"websocket {ws.get('status')} p50 {ws.get('p50_ms')} ms p99 {ws.get('p99_ms')} ms "
                f"({ws.get('received', 0)}/{tally.acked}), after the 202: p50 {ws.get('after_http_answer_p50_ms')} ms "
                f"p99 {ws.get('after_http_answer_p99_ms')} ms; the client's own loop lag p50 "
                f"{figure['client_loop_lag_p50_ms']} ms p99 {figure['client_loop_lag_p99_ms']} ms; "
                f"{cpu.result.describe()}"
            )
            figures[label] = figure
        if not refused:
            figures["websocket_order"] = watcher.order_problems()
    finally:
        await watcher.close()
    return figures


def phase_copy(world: World, tenant: Tenant, source: Source) -> dict[str, Any]:
    """COPY into tables like engines_event (same columns, indexes, constraints)."""
    now = datetime.now(UTC)
    occurred = datetime.fromisoformat(OCCURRED_AT.replace("Z", "+00:00"))
    figures: dict[str, Any] = {"rows": COPY_ROWS}
    columns = "source_id, event_id, type, key, version, upstream_seq, data, origin, occurred_at, received_at"
    for label, create in (
        # A logged table, like the real one: the figure to compare with.
        ("logged_table", f"CREATE TABLE {tenant.schema}.bench_copy_event"),
        # A temporary table skips the WAL: an upper bound, shown for context.
        ("temp_table", "CREATE TEMP TABLE bench_copy_event"),
    ):
        rows = [
            (source.id, f"copy-{n}", "upsert", f"copy-k{n}", 1, n + 1,
             json.dumps({"total": n / 4, "status": "paid", "items": n % 7, "customer": f"c-{n % 997}"}),
             "push", occurred, now)
            for n in range(COPY_ROWS)
        ]  # fmt: skip
        target = "bench_copy_event" if label == "temp_table" else f"{tenant.schema}.bench_copy_event"
        with world.connect() as conn:
            conn.execute(f"{create} (LIKE {tenant.schema}.engines_event INCLUDING ALL)")
            conn.commit()
            started = time.perf_counter()
            with conn.cursor() as cursor, cursor.copy(f"COPY {target} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            conn.commit()
            elapsed = time.perf_counter() - started
        figures[label] = {"rows_per_s": rnd(COPY_ROWS / elapsed), "seconds": rnd(elapsed, 3)}
    say(
        f"  raw COPY: {figures['logged_table']['rows_per_s']:,.0f} rows/s logged table, "
        f"{figures['temp_table']['rows_per_s']:,.0f} rows/s temp table"
    )
    return figures


# Main ---------------------------------------------------------------------


async def run(world: World, args: argparse.Namespace) -> dict[str, Any]:
    duration = args.duration
    report: dict[str, Any] = {
        "machine": {
            "cpus": psutil.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {
            "duration_s": duration,
            "batch_size": BATCH_SIZE,
            "batch_concurrency_per_tenant": BATCH_CONCURRENCY,
            "single_concurrency": SINGLE_CONCURRENCY,
            "server": "uvicorn beastflow.asgi:application --no-access-log (1 worker)",
            "events": "upserts of new keys: one event, one record and one change each",
        },
    }
    say("setting up: database, migrations, tenants")
    world.create_database()
    tenant_a, tenant_b = world.create_tenant("bench-a"), world.create_tenant("bench-b")
    world.lift_quotas()

    say("phase 0: load generator ceiling")
    report["client_ceiling"] = await phase_client_ceiling(world, min(duration, 3.0))

    server = world.start_server("beastflow", "beastflow.asgi:application")
    for name in ("batch", "single", "single-ref", "single-issue", "paced-10", "paced-1", "naive"):
        world.create_source(server, tenant_a, name)
    world.create_source(server, tenant_a, "native-github", push=GITHUB_PUSH)
    world.create_source(server, tenant_b, "batch")
    a, b = tenant_a.sources, tenant_b.sources

    say("phase 1: batch ingest, one tenant")
    report["batch_1_tenant"] = await phase_batch(world, server, [(tenant_a, a["batch"])], duration)
    say("phase 2: batch ingest, two tenants at once")
    report["batch_2_tenants"] = await phase_batch(
        world, server, [(tenant_a, a["batch"]), (tenant_b, b["batch"])], duration
    )
    say("phase 3: single-event webhooks")
    report["single_event"] = await phase_single(world, server, tenant_a, a["single"], duration)
    say("phase 3b: native GitHub webhooks against BeastFlow single events, alternated")
    report["native_push"] = await phase_native(world, server, tenant_a, duration)
    say("phase 6: paced 1,000 events/s, latency and commit-to-websocket")
    report["paced_1000_events_per_s"] = await phase_paced(world, server, tenant_a, duration)
    world.stop_server(server)

    say("phase 4: naive baseline")
    naive_server = world.start_server("naive", "beastflow.asgi:application", settings="bench._naive_settings")
    report["naive_baseline"] = await phase_naive(world, naive_server, tenant_a, a["naive"], duration)
    world.stop_server(naive_server)

    say("phase 5: raw COPY (no server running)")
    report["raw_copy"] = phase_copy(world, tenant_a, a["batch"])

    if args.two_workers:
        say("phase 7: 2 uvicorn workers")
        two: dict[str, Any] = {}
        server = world.start_server("beastflow-2w", "beastflow.asgi:application", workers=2)
        two["batch_2_tenants"] = await phase_batch(
            world, server, [(tenant_a, a["batch"]), (tenant_b, b["batch"])], duration
        )
        two["single_event"] = await phase_single(world, server, tenant_a, a["single"], duration)
        world.stop_server(server)
        naive_server = world.start_server(
            "naive-2w", "beastflow.asgi:application", workers=2, settings="bench._naive_settings"
        )
        two["naive_baseline"] = await phase_naive(world, naive_server, tenant_a, a["naive"], duration)
        world.stop_server(naive_server)
        two["single_vs_naive"] = ratio(two["single_event"]["events_per_s"], two["naive_baseline"]["events_per_s"])
        report["two_workers"] = two

    copy_rate = report["raw_copy"]["logged_table"]["rows_per_s"]
    report["ratios"] = {
        "single_vs_naive": ratio(report["single_event"]["events_per_s"], report["naive_baseline"]["events_per_s"]),
        "native_github_vs_single": report["native_push"]["ratio_native_vs_beastflow"],
        "batch_1_tenant_vs_copy": ratio(report["batch_1_tenant"]["total_events_per_s"], copy_rate, 4),
        "batch_2_tenants_vs_copy": ratio(report["batch_2_tenants"]["total_events_per_s"], copy_rate, 4),
    }
    report["targets"] = build_targets(report)
    report["integrity"] = integrity(report)
    report["noise_other_cpu"] = other_cpu(report)
    return report


async def run_native_only(world: World, args: argparse.Namespace) -> dict[str, Any]:
    """Phase 3b alone: a quicker look at what native webhooks cost against BeastFlow events."""
    report: dict[str, Any] = {
        "machine": {"cpus": psutil.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {"duration_s": args.duration, "single_concurrency": SINGLE_CONCURRENCY},
    }
    say("setting up: database, migrations, tenant")
    world.create_database()
    tenant = world.create_tenant("bench-a")
    world.lift_quotas()
    server = world.start_server("beastflow", "beastflow.asgi:application")
    world.create_source(server, tenant, "single-ref")
    world.create_source(server, tenant, "single-issue")
    world.create_source(server, tenant, "native-github", push=GITHUB_PUSH)
    say("phase 3b: native GitHub webhooks against BeastFlow single events, alternated")
    report["native_push"] = await phase_native(world, server, tenant, args.duration)
    world.stop_server(server)
    report["integrity"] = integrity(report)
    report["noise_other_cpu"] = other_cpu(report)
    return report


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the same cleanup as Ctrl-C


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=6.0, help="seconds measured per phase (default 6)")
    parser.add_argument("--no-two-workers", dest="two_workers", action="store_false", help="skip phase 7")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument(
        "--native-only", action="store_true", help="run phase 3b only (native webhooks vs BeastFlow events)"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    world = World()
    started = time.perf_counter()
    try:
        report = uvloop.run(run_native_only(world, args) if args.native_only else run(world, args))
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    except Exception as exc:
        log(f"failed: {exc}")
        raise
    finally:
        world.close()
    report["wall_s"] = round(time.perf_counter() - started, 1)
    if args.native_only:
        print_native(report)
    else:
        print_table(report)
    out = OUT_DIR / ("ingest-native.json" if args.native_only else "ingest.json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    say(f"\nwritten {out.relative_to(OUT_DIR.parent.parent)} in {report['wall_s']} s")
    if not report["integrity"]["ok"]:
        return 1
    if args.strict and any(target["pass"] is False for target in report["targets"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
