"""Reconciliation of a million records with 0.1% drift, against the targets, on this machine.

`make bench` (or `.venv/bin/python bench/reconcile.py [--records N] [--small N] [--strict]`).

Its own world: a fresh `beastflow_bench_reconcile` database on DATABASE_URL's
server, migrated, one tenant. For each size (100,000 then 1,000,000 records):

1. the records, made from their index (key, data, version 1), are COPYed
   straight into engines_record for two sources, one reconciled with bucket
   digests and one without;
2. an upstream process (this script with --serve) holds the same records
   in the simulator's dataset, with 0.1% drift: a third missing locally, a
   third changed upstream (version 2), a third deleted upstream. It serves
   docs/contract.md §6 through the simulator's own ASGI app (no push, no faults);
   its top-level digests are computed once before the runs, as a real
   upstream keeps them;
3. each run executes in a fresh process (this script with --execute) that
   reports its wall time and peak RSS, so memory is that of one run alone;
4. after each run the source's local digests must equal the upstream's.

Targets: with digests, records fetched <= 2% of the total and <= 60 s;
without, >= 50,000 records compared per second; peak RSS < 500 MB and flat
(the 1M run within 64 MB of the 100k run). Prints a table, writes
.beastflow/bench/reconcile.json, and cleans up (processes, database, Redis
keys) on success, failure and Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(ROOT))

OUT = ROOT / ".beastflow" / "bench" / "reconcile.json"
BENCH_DATABASE = "beastflow_bench_reconcile"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/beastflow"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
TENANT = "bench-reconcile"
DRIFT = 0.001
PAGE_LIMIT = 1000  # the simulator serves at most 1,000 records a page

TARGET_FETCHED_PCT = 2.0
TARGET_DIGEST_S = 60.0
TARGET_COMPARED_PER_S = 50_000
TARGET_PEAK_RSS_MB = 500.0
TARGET_FLAT_MB = 64.0

_STATUSES = ("new", "paid", "shipped", "cancelled")
_NOTES = ("", "rush", "gift wrap", "café au lait", "Straße 7", "東京")


def say(message: str) -> None:
    print(message, flush=True)


# -- the data, made from an index --------------------------------------------------


def key_of(index: int) -> str:
    return f"rec-{index:07d}"


def data_of(index: int, generation: int = 1) -> dict[str, Any]:
    return {
        "status": _STATUSES[(index + generation) % 4],
        "qty": (index * 7 + generation) % 20 + 1,
        "price_cents": (index * 7919 + generation * 13) % 100_000,
        "note": _NOTES[index % 6],
    }


def drift_of(index: int) -> str | None:
    """Every (1/DRIFT)-th record drifts; the kinds take turns."""
    step = round(1 / DRIFT)
    if index % step != step // 2:
        return None
    return ("missing", "changed", "deleted")[(index // step) % 3]


def drift_counts(records: int) -> dict[str, int]:
    counts = {"missing": 0, "changed": 0, "deleted": 0}
    for index in range(records):
        kind = drift_of(index)
        if kind is not None:
            counts[kind] += 1
    return counts


# -- the upstream process (--serve) ------------------------------------------------


def serve(records: int) -> None:
    """Build the upstream's truth, print the port, serve until SIGTERM."""
    import asyncio

    import uvicorn

    from simulator.runner import build_simulator
    from simulator.server import SimulatorApp

    sim = build_simulator(mutations_per_s=0.0, key_space=1, run_id="bench")
    dataset = sim.dataset
    for index in range(records):
        kind = drift_of(index)
        if kind == "deleted":
            continue
        dataset.upsert(key_of(index), data_of(index), silent=True)
        if kind == "changed":
            dataset.upsert(key_of(index), data_of(index, generation=2), silent=True)
    dataset.digests()  # kept up to date by a real upstream; computed here once, before any run
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(json.dumps({"port": sock.getsockname()[1], "records": len(dataset)}), flush=True)
    config = uvicorn.Config(SimulatorApp(sim), lifespan="off", log_config=None, log_level="warning", access_log=False)
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


# -- one run in its own process (--execute) ---------------------------------------


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def execute(schema: str, source_id: int) -> None:
    """Reconcile one source now, in this process; print the figures as JSON."""
    import django

    django.setup()
    from django.utils import timezone
    from django_tenants.utils import schema_context

    from engines.models import ReconciliationRun
    from engines.reconcile.engine import reconcile_execute
    from engines.selectors import reconciliation_render

    with schema_context(schema):
        now = timezone.now()
        # The row directly, not reconcile_request: no task is queued for a worker.
        run = ReconciliationRun.objects.create(source_id=source_id, trigger="manual", started_at=now, heartbeat_at=now)
        baseline = rss_mb()
        started = time.perf_counter()
        done = reconcile_execute(run_id=run.pk)
        wall = time.perf_counter() - started
        assert done is not None
        figures = reconciliation_render(done)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"run": figures, "wall_s": wall, "baseline_rss_mb": baseline, "peak_rss_mb": peak}), flush=True)


# -- the orchestrator ----------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


class World:
    """Database, tenant, processes and Redis keys of this run; `close` undoes them all."""

    def __init__(self) -> None:
        self.admin_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
        self.database_url = with_database(self.admin_url, BENCH_DATABASE)
        self.redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
        self.redis_prefix = f"bfbenchrc{os.getpid()}"
        self.children: list[subprocess.Popen[str]] = []
        self.database_created = False
        self.tenant: Any = None
        self.schema = ""

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "BEASTFLOW_REDIS_PREFIX": self.redis_prefix,
            "BEASTFLOW_LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "beastflow.settings",
            "PYTHONUNBUFFERED": "1",
        }

    def create(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(with_database(self.admin_url, "postgres"), autocommit=True) as conn:
            # A run killed with SIGKILL leaves its database behind: start clean.
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DATABASE)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DATABASE)))
        self.database_created = True
        os.environ.update(self.env())
        import django

        django.setup()
        from django.core.management import call_command

        from tenants.services import tenant_create

        call_command("migrate_schemas", verbosity=0)
        self.tenant, _ = tenant_create(slug=TENANT, name="Bench reconcile")
        self.schema = self.tenant.schema_name

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *args],
            cwd=ROOT,
            env=self.env(),
            stdout=subprocess.PIPE,
            text=True,
            process_group=0,  # Ctrl-C reaches only us; we stop the children
        )
        self.children.append(child)
        return child

    def stop(self, child: subprocess.Popen[str]) -> None:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        if child.stdout is not None:
            child.stdout.close()
        if child in self.children:
            self.children.remove(child)

    def close(self) -> None:
        for child in list(self.children):
            self.stop(child)
        if self.database_created:
            import psycopg
            from django.db import connections
            from psycopg import sql

            connections.close_all()
            with psycopg.connect(with_database(self.admin_url, "postgres"), autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DATABASE)))
            self.database_created = False
        with contextlib.suppress(Exception):
            import redis

            client = redis.Redis.from_url(self.redis_url)
            names = list(client.scan_iter(match=f"{self.redis_prefix}:*", count=1000))
            for start in range(0, len(names), 500):
                client.delete(*names[start : start + 500])
            client.close()


class Upstream:
    def __init__(self, world: World, records: int) -> None:
        self.world = world
        self.process = world.spawn("--serve", str(records))
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the upstream process exited before serving")
        ready = json.loads(line)
        self.port = int(ready["port"])
        self.records = int(ready["records"])
        self.base_url = f"http://127.0.0.1:{self.port}"

    def digests(self) -> dict[str, str]:
        with urllib.request.urlopen(f"{self.base_url}/snapshot?digest=1", timeout=60) as response:  # noqa: S310
            return dict(json.loads(response.read())["buckets"])

    def rss_mb(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def close(self) -> None:
        self.world.stop(self.process)


def local_rows(records: int) -> Iterator[tuple[str, str, str]]:
    """(key, data JSON, record hash) of the local store: the truth before the drift, minus what it missed."""
    from engines.ingest.plan import canonical_json, record_hash

    for index in range(records):
        if drift_of(index) == "missing":
            continue
        data = data_of(index)
        yield key_of(index), canonical_json(data), record_hash(data)


def load_records(world: World, source_ids: list[int], records: int) -> float:
    """COPY the local records into the first source, copy them in SQL to the others; seconds taken."""
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(world.database_url, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {world.schema}, public")
        now = datetime.now(UTC)
        with conn.cursor() as cursor:
            columns = "source_id, key, version, data, hash, deleted, change_seq, updated_at"
            with cursor.copy(f"COPY engines_record ({columns}) FROM STDIN") as copy:
                for key, data, hash_ in local_rows(records):
                    copy.write_row((source_ids[0], key, 1, data, hash_, False, 1, now))
            for other in source_ids[1:]:
                cursor.execute(
                    f"INSERT INTO engines_record ({columns})"  # noqa: S608 (no input)
                    f" SELECT %s, key, version, data, hash, deleted, change_seq, updated_at"
                    " FROM engines_record WHERE source_id = %s",
                    [other, source_ids[0]],
                )
            # The records above were never changes: no seq was handed out for them,
            # but every live record must be older than any run's start.
            cursor.execute("UPDATE engines_seqcounter SET last = GREATEST(last, 1) WHERE id = 1")
            cursor.execute("VACUUM ANALYZE engines_record")
    return time.perf_counter() - started


def drop_records(world: World, source_ids: list[int]) -> None:
    import psycopg

    with psycopg.connect(world.database_url, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {world.schema}, public")
        for table in ("engines_record", "engines_event", "engines_change"):
            conn.execute(f"DELETE FROM {table} WHERE source_id = ANY(%s)", [source_ids])  # noqa: S608


def make_sources(world: World, upstream: Upstream, records: int) -> dict[str, int]:
    from django_tenants.utils import tenant_context

    from engines import sources

    made = {}
    with tenant_context(world.tenant):
        for mode, digests in (("digest", True), ("full", False)):
            spec = sources.parse_spec(
                {
                    "name": f"bench-{records}-{mode}",
                    "connector": "http",
                    "config": {
                        "poll_url": f"{upstream.base_url}/changes",
                        "snapshot_url": f"{upstream.base_url}/snapshot",
                        "page_limit": PAGE_LIMIT,
                        "timeout_s": 60,
                        "digests": digests,
                    },
                    "reconcile": {"interval_s": 0},
                }
            )
            source, _ = sources.source_create(spec=spec)
            made[mode] = source.pk
    return made


def local_digest_seconds(world: World, source_id: int) -> tuple[float, dict[str, str]]:
    """The local side's SQL aggregate alone: all 256 bucket digests of a source."""
    from django_tenants.utils import schema_context

    from engines.reconcile import store

    with schema_context(world.schema):
        started = time.perf_counter()
        buckets = store.local_buckets(store.raw_cursor(), source_id)
        return time.perf_counter() - started, {name: state.digest for name, state in buckets.items()}


def run_one(world: World, source_id: int) -> dict[str, Any]:
    child = world.spawn("--execute", world.schema, str(source_id))
    try:
        out, _ = child.communicate(timeout=900)
    finally:
        world.stop(child)
    if child.returncode != 0:
        raise RuntimeError(f"the run of source {source_id} exited with {child.returncode}")
    return dict(json.loads(out.strip().splitlines()[-1]))


def measure(world: World, records: int) -> dict[str, Any]:
    from engines.reconcile.diff import BUCKETS, EMPTY_DIGEST

    say(f"\n== {records:,} records, {DRIFT:.1%} drift")
    started = time.perf_counter()
    upstream = Upstream(world, records)
    ready_s = time.perf_counter() - started
    say(f"  upstream ready in {ready_s:.1f} s: {upstream.records:,} records, rss {upstream.rss_mb():.0f} MB")
    figures: dict[str, Any] = {"records": records, "expected_drift": drift_counts(records)}
    try:
        source_ids = make_sources(world, upstream, records)
        loaded = load_records(world, list(source_ids.values()), records)
        say(f"  local records COPYed for 2 sources in {loaded:.1f} s")
        sql_s, _ = local_digest_seconds(world, source_ids["digest"])
        figures["local_digests_sql_s"] = round(sql_s, 2)
        say(f"  local bucket digests in SQL: {sql_s:.2f} s")
        truth = upstream.digests()
        for mode, source_id in source_ids.items():
            result = run_one(world, source_id)
            run = result["run"]
            _, after = local_digest_seconds(world, source_id)
            in_sync = {b: after.get(b, EMPTY_DIGEST) for b in BUCKETS} == truth
            figure = {
                "status": run["status"],
                "duration_s": round(run["duration_ms"] / 1000, 2),
                "wall_s": round(result["wall_s"], 2),
                "upstream_count": run["upstream_count"],
                "local_count": run["local_count"],
                "missing": run["missing"],
                "changed": run["changed"],
                "deleted": run["deleted"],
                "corrections": run["corrections"],
                "buckets_differing": run["buckets_differing"],
                "pages_fetched": run["pages_fetched"],
                "records_fetched": run["records_fetched"],
                "fetched_pct": round(100 * run["records_fetched"] / max(run["upstream_count"], 1), 3),
                "compared_per_s": round(run["upstream_count"] / max(result["wall_s"], 1e-9)),
                "baseline_rss_mb": round(result["baseline_rss_mb"], 1),
                "peak_rss_mb": round(result["peak_rss_mb"], 1),
                "in_sync_after": in_sync,
                "exact": in_sync
                and {k: run[k] for k in ("missing", "changed", "deleted")} == figures["expected_drift"]
                and run["corrections"] == sum(figures["expected_drift"].values()),
            }
            figures[mode] = figure
            say(
                f"  {mode:>6}: {figure['status']} in {figure['duration_s']} s; fetched {figure['records_fetched']:,}"
                f" ({figure['fetched_pct']}%) in {figure['pages_fetched']:,} pages; "
                f"{figure['compared_per_s']:,} compared/s; corrections {figure['corrections']:,}; "
                f"peak rss {figure['peak_rss_mb']} MB; in sync after: {in_sync}"
            )
        drop_records(world, list(source_ids.values()))
    finally:
        upstream.close()
    return figures


def targets(small: dict[str, Any], large: dict[str, Any]) -> list[dict[str, Any]]:
    digest, full = large["digest"], large["full"]
    peak = max(digest["peak_rss_mb"], full["peak_rss_mb"])
    growth = max(large[m]["peak_rss_mb"] - small[m]["peak_rss_mb"] for m in ("digest", "full"))
    exact = all(size[mode]["exact"] for size in (small, large) for mode in ("digest", "full"))
    rows = [
        ("digests: records fetched", f"{digest['fetched_pct']}%", f"<= {TARGET_FETCHED_PCT}%",
         digest["fetched_pct"] <= TARGET_FETCHED_PCT),
        ("digests: run time", f"{digest['duration_s']} s", f"<= {TARGET_DIGEST_S:.0f} s",
         digest["duration_s"] <= TARGET_DIGEST_S),
        ("no digests: records compared/s", f"{full['compared_per_s']:,}", f">= {TARGET_COMPARED_PER_S:,}",
         full["compared_per_s"] >= TARGET_COMPARED_PER_S),
        ("peak RSS of a run", f"{peak} MB", f"< {TARGET_PEAK_RSS_MB:.0f} MB", peak < TARGET_PEAK_RSS_MB),
        (f"peak RSS {large['records']:,} vs {small['records']:,}", f"+{growth:.1f} MB",
         f"<= +{TARGET_FLAT_MB:.0f} MB", growth <= TARGET_FLAT_MB),
        ("every run repaired the drift exactly", str(exact), "True", exact),
    ]  # fmt: skip
    return [{"target": name, "measured": got, "goal": goal, "pass": ok} for name, got, goal, ok in rows]


def table(small: dict[str, Any], large: dict[str, Any], checks: list[dict[str, Any]]) -> None:
    say("\n| records | mode | run s | fetched | fetched % | compared/s | corrections | peak RSS MB |")
    say("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in (small, large):
        for mode in ("digest", "full"):
            f = size[mode]
            say(
                f"| {size['records']:,} | {mode} | {f['duration_s']} | {f['records_fetched']:,} | {f['fetched_pct']}"
                f" | {f['compared_per_s']:,} | {f['corrections']:,} | {f['peak_rss_mb']} |"
            )
    say("\n| target | measured | goal | |")
    say("| --- | ---: | ---: | --- |")
    for check in checks:
        say(f"| {check['target']} | {check['measured']} | {check['goal']} | {'PASS' if check['pass'] else 'FAIL'} |")


def orchestrate(args: argparse.Namespace) -> int:
    world = World()
    started = time.perf_counter()
    report: dict[str, Any] = {
        "bench": "reconcile",
        "started_at": datetime.now(UTC).isoformat(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "drift": DRIFT,
    }
    try:
        world.create()
        small = measure(world, args.small)
        large = measure(world, args.records)
        checks = targets(small, large)
        report.update({"sizes": [small, large], "targets": checks})
        table(small, large, checks)
    finally:
        world.close()
    report["wall_s"] = round(time.perf_counter() - started, 1)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    say(f"\nwritten {OUT.relative_to(ROOT)} in {report['wall_s']} s")
    if args.strict and not all(check["pass"] for check in report["targets"]):
        return 1
    return 0


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the same clean-up path as Ctrl-C


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="the large size (default 1,000,000)")
    parser.add_argument("--small", type=int, default=100_000, help="the size memory is compared with (default 100,000)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--execute", nargs=2, metavar=("SCHEMA", "SOURCE"), help=argparse.SUPPRESS)
    # `make bench ARGS=...` hands every bench the same arguments: ignore the others'.
    args, _ = parser.parse_known_args(argv)
    if args.serve is not None:
        serve(args.serve)
        return 0
    if args.execute is not None:
        execute(args.execute[0], int(args.execute[1]))
        return 0
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return orchestrate(args)
    except KeyboardInterrupt:
        say("interrupted; cleaned up")
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
