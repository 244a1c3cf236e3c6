"""Commit-to-websocket latency of the changes stream (engines.publish -> ws/v1/changes).

`.venv/bin/python bench/changes_ws_latency.py [--rate 1000] [--seconds 2] [--batch 1]`

Creates a throwaway tenant (schema `t_wsbench_<hex>`) in DATABASE_URL's
database, serves `beastflow.asgi:application` with uvicorn (1 worker), and
connects a websocket client to `ws/v1/changes`. A writer thread commits
changes at the paced rate (seq from SeqCounter and the Change rows in one
transaction, like the commit path) and calls `engines.publish.changes_committed`
right after each commit. Latency = the client's receive time minus the
commit's end, per change (the client runs in its own process; Linux's
monotonic clock is system-wide). The path measured: PUBLISH inline in the
committing thread, Redis pub/sub, the web process's hub
(engines.changes_bus), the consumer, one websocket frame per change.

Prints p50/p99/max as JSON; removes the tenant, the server and its Redis
keys. The writer's session uses synchronous_commit=off so that this 2-core
machine keeps the pace: commit durability is not what is measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PREFIX = f"bfwsbench{os.getpid()}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "beastflow.settings")
os.environ["BEASTFLOW_REDIS_PREFIX"] = PREFIX  # our own broker / channel-layer keys
os.environ.setdefault("BEASTFLOW_LOG_LEVEL", "WARNING")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("the server did not start")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _listen(port: int, api_key: str, total: int, pipe: Any) -> None:
    import websockets

    async def run() -> dict[int, float]:
        received_at: dict[int, float] = {}
        url = f"ws://127.0.0.1:{port}/ws/v1/changes?after=0"  # a fresh tenant: no backlog
        async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {api_key}"}) as ws:
            await asyncio.sleep(0.3)  # the consumer joined its group and read the (empty) backlog
            pipe.send("ready")
            while len(received_at) < total:
                message = await asyncio.wait_for(ws.recv(), 30)
                received_at[json.loads(message)["seq"]] = time.monotonic()
        return received_at

    pipe.send(asyncio.run(run()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=1000, help="changes per second")
    parser.add_argument("--seconds", type=float, default=2.0, help="measured duration")
    parser.add_argument("--batch", type=int, default=1, help="changes per commit")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds not measured")
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, connections, transaction
    from django.utils import timezone
    from django_tenants.utils import tenant_context

    from beastflow.redis_client import get_redis
    from engines import publish, sources
    from engines.models import Change
    from engines.selectors import change_render
    from tenants import services

    # The throwaway tenant lives in DATABASE_URL's database: bring its shared
    # tables up to date first (a checkout newer than its last `make up`).
    call_command("migrate_schemas", "--shared", verbosity=0)
    slug = f"wsbench-{secrets.token_hex(3)}"
    tenant, key = services.tenant_create(slug=slug)
    server: subprocess.Popen[bytes] | None = None
    try:
        with tenant_context(tenant):
            source, _ = sources.source_create(
                spec=sources.parse_spec(
                    {"name": "bench", "connector": "http", "config": {"poll_url": "http://127.0.0.1:9/changes"}}
                )
            )
        port = _free_port()
        server = subprocess.Popen(
            [str(ROOT / ".venv/bin/uvicorn"), "beastflow.asgi:application", "--port", str(port), "--no-access-log",
             "--log-level", "warning"],
            cwd=ROOT,
            env=dict(os.environ),
            start_new_session=True,
        )  # fmt: skip
        _wait_port(port)

        committed_at: dict[int, float] = {}
        total = int(args.rate * (args.seconds + args.warmup))
        commits = total // args.batch
        interval = args.batch / args.rate
        ready = threading.Event()

        def write() -> None:
            ready.wait()
            with tenant_context(tenant):
                with connection.cursor() as cursor:
                    cursor.execute("SET synchronous_commit = off")
                start = time.monotonic()
                for n in range(commits):
                    # Paced against the schedule, not the previous commit, so that
                    # a slow commit does not lower the rate.
                    delay = start + n * interval - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    with transaction.atomic(), connection.cursor() as cursor:
                        cursor.execute(
                            "UPDATE engines_seqcounter SET last = last + %s WHERE id = 1 RETURNING last", [args.batch]
                        )
                        last = cursor.fetchone()[0]
                        now = timezone.now()
                        rows = [
                            Change(seq=seq, source_id=source.pk, event_id=f"e{seq}", type="upsert", key=f"k{seq}",
                                   version=1, data={"n": seq}, origin="push", committed_at=now)
                            for seq in range(last - args.batch + 1, last + 1)
                        ]  # fmt: skip
                        Change.objects.bulk_create(rows)
                    done = time.monotonic()
                    for row in rows:
                        committed_at[row.seq] = done
                    publish.changes_committed(tenant.schema_name, [change_render(row) for row in rows])
            connections.close_all()

        # The client runs in a process of its own (like a real client), so it
        # does not share a GIL with the writer; CLOCK_MONOTONIC is system-wide.
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        listener = context.Process(target=_listen, args=(port, key.raw, total, child), daemon=True)
        listener.start()
        if not parent.poll(30) or parent.recv() != "ready":
            raise RuntimeError("the websocket client did not connect")
        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        ready.set()
        writer.join()
        if not parent.poll(30):
            raise RuntimeError(f"stalled: {len(committed_at)} committed, the client has not got them all")
        received_at: dict[int, float] = parent.recv()
        listener.join(10)

        seqs = sorted(committed_at)
        skip = int(len(seqs) * args.warmup / (args.seconds + args.warmup))
        measured = seqs[skip:]
        latencies = [(received_at[seq] - committed_at[seq]) * 1000 for seq in measured]
        span = committed_at[measured[-1]] - committed_at[measured[0]]
        print(
            json.dumps(
                {
                    "changes": len(measured),
                    "batch": args.batch,
                    "rate_per_s": round(len(measured) / span) if span else None,
                    "p50_ms": round(_percentile(latencies, 0.50), 3),
                    "p99_ms": round(_percentile(latencies, 0.99), 3),
                    "max_ms": round(max(latencies), 3),
                    "mean_ms": round(statistics.fmean(latencies), 3),
                    "in_order": [seq for seq in received_at] == sorted(received_at),
                }
            )
        )
    finally:
        if server is not None:
            os.killpg(server.pid, 15)
            server.wait(10)
        services.tenant_delete(tenant=tenant)
        client = get_redis()
        for name in client.scan_iter(f"{PREFIX}:*"):
            client.delete(name)


if __name__ == "__main__":
    main()
