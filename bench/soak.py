"""Soak: the real `make up` stack at a fixed ingest rate for minutes; does any process grow?

`make soak` (30 minutes), `make soak ARGS="--minutes 5"` or BEASTFLOW_SOAK_MINUTES=5.
Runs the launcher (bench/_launched.py: web, worker, beat under its
supervisor) on a database and Redis prefix of its own, on the PostgreSQL and
Redis every verb resolves (beastflow/devservices.py), pushes --rate events/s
the whole time, and samples the resident memory (RSS) of each process every
--every-s seconds: web, the worker (its main process and its pool summed;
each pool process shown too) and beat. The first sample is taken after a
warm-up (--warmup-s, default a tenth of the run, at most 120 s), since
imports and caches fill during the first minutes. At the end it prints each
process's growth over the run and over its second half (a leak keeps
growing; a cache that filled does not), checks that every acknowledged event
is stored, and writes .beastflow/bench/soak.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from beastflow import devservices
from bench._launched import Launched, Pusher
from bench._world import OUT_DIR, log

ROOT = Path(__file__).resolve().parent.parent
WORKDIR = ROOT / ".beastflow" / "soak"
ROLES = ("web", "worker", "batch", "beat")  # batch: make up's second worker


def rss_mb(stack: Launched) -> dict[str, float]:
    """RSS in MB per role (a worker's pool summed in), plus each worker pool process as worker.pool<i>."""
    sample: dict[str, float] = {}
    for role in ROLES:
        processes = stack.pool(role)
        if not processes:  # a layout without that process (one worker of chosen queues)
            continue
        total = 0.0
        for index, process in enumerate(processes):
            try:
                mb = process.memory_info().rss / 2**20
            except psutil.NoSuchProcess:
                continue
            total += mb
            if role in ("worker", "batch") and index > 0:
                sample[f"{role}.pool{index}"] = round(mb, 1)
        sample[role] = round(total, 1)
    return sample


def growth(first: dict[str, float], last: dict[str, float]) -> dict[str, dict[str, float]]:
    return {
        name: {"mb": round(last[name] - first[name], 1), "percent": round(100 * (last[name] / first[name] - 1), 2)}
        for name in first
        if name in last and first[name] > 0
    }


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/soak.py", description=__doc__.splitlines()[0])
    default_minutes = float(os.environ.get("BEASTFLOW_SOAK_MINUTES", "30"))
    parser.add_argument("--minutes", type=float, default=default_minutes, help="how long (30, BEASTFLOW_SOAK_MINUTES)")
    parser.add_argument("--rate", type=float, default=200.0, help="events/s pushed the whole time (200)")
    parser.add_argument("--batch", type=int, default=4, help="events per request (4)")
    parser.add_argument("--every-s", type=float, default=None, help="seconds between samples (run/10, 15..300)")
    parser.add_argument("--warmup-s", type=float, default=None, help="before the first sample (run/10, <= 120)")
    parser.add_argument("--database", default="beastflow_soak")
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    args = parser.parse_args(argv)
    seconds = args.minutes * 60
    args.every_s = args.every_s or min(300.0, max(15.0, seconds / 10))
    args.warmup_s = args.warmup_s if args.warmup_s is not None else min(120.0, seconds / 10)
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    urls = devservices.resolve(ROOT / ".beastflow")
    stack = Launched(args.workdir / "stack", urls["DATABASE_URL"], urls["REDIS_URL"], database=args.database)
    pusher: Pusher | None = None
    try:
        stack.start()
        source_id = stack.create_source("soak")
        pusher = Pusher(stack.port, stack.api_key, source_id, rate=args.rate, batch=args.batch)
        pusher.start()
        began = time.monotonic()
        log(f"pushing {args.rate:g} events/s for {args.minutes:g} min; warm-up {args.warmup_s:.0f} s")
        time.sleep(args.warmup_s)
        samples: list[dict[str, Any]] = []
        end = began + args.minutes * 60
        print(f"{'t (s)':>7} {'web MB':>8} {'worker MB':>10} {'beat MB':>8} {'acked':>9} {'not 2xx':>8}  pool MB")
        while True:
            now = time.monotonic()
            mb = rss_mb(stack)
            answers = list(pusher.answers)
            sample = {
                "t_s": round(now - began),
                "rss_mb": mb,
                "acked": sum(len(a.ids) for a in answers if a.ok),
                "not_2xx": sum(not a.ok for a in answers),
            }
            samples.append(sample)
            pools = " ".join(f"{v:.0f}" for k, v in sorted(mb.items()) if k.startswith("worker.pool"))
            print(
                f"{sample['t_s']:>7} {mb.get('web', 0):>8.1f} {mb.get('worker', 0):>10.1f} {mb.get('beat', 0):>8.1f} "
                f"{sample['acked']:>9} {sample['not_2xx']:>8}  {pools}",
                flush=True,
            )
            if now >= end:
                break
            time.sleep(max(0.0, min(args.every_s, end - time.monotonic())))
        pusher.stop()
        answers = list(pusher.answers)
        acked = [event_id for a in answers if a.ok for event_id in a.ids]
        stored = stack.stored(source_id, acked)
        first, last = samples[0]["rss_mb"], samples[-1]["rss_mb"]
        middle = samples[len(samples) // 2]["rss_mb"]
        roles_only = {k: v for k, v in first.items() if k in ROLES}
        return {
            "minutes": args.minutes,
            "rate_events_per_s": args.rate,
            "achieved_events_per_s": round(len(acked) / max(1e-9, time.monotonic() - began), 1),
            "samples": samples,
            "growth": growth(roles_only, last),
            "growth_second_half": growth({k: v for k, v in middle.items() if k in ROLES}, last),
            "acknowledged": len(acked),
            "stored": len(stored),
            "not_2xx": sum(not a.ok for a in answers),
            "restarts_seen": stack.log_path.read_text(errors="replace").count("event=process_restarted"),
        }
    finally:
        if pusher is not None:
            pusher.stop()
        stack.close()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the same cleanup as Ctrl-C


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    args = parse(argv)
    report = run(args)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "soak.json").write_text(json.dumps(report, indent=2))
    print(
        f"soak: {report['minutes']:g} min at {report['rate_events_per_s']:g} events/s "
        f"(achieved {report['achieved_events_per_s']:g}); acknowledged {report['acknowledged']}, "
        f"stored {report['stored']}, not 2xx {report['not_2xx']}, restarts {report['restarts_seen']}"
    )
    print(f"{'process':<8} {'first MB':>9} {'last MB':>8} {'growth':>16} {'second half':>16}")
    first, last = report["samples"][0]["rss_mb"], report["samples"][-1]["rss_mb"]
    for role in ROLES:
        if role not in report["growth"]:
            continue
        total, half = report["growth"][role], report["growth_second_half"].get(role, {"mb": 0.0, "percent": 0.0})
        print(
            f"{role:<8} {first[role]:>9.1f} {last[role]:>8.1f} "
            f"{total['mb']:>+7.1f} MB {total['percent']:>+5.1f}% {half['mb']:>+7.1f} MB {half['percent']:>+5.1f}%"
        )
    return 0 if report["acknowledged"] == report["stored"] and report["restarts_seen"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
