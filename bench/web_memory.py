"""Web memory under pushes spread over many tenants: does the process level off?

`.venv/bin/python bench/web_memory.py --tenants 200 --sources 3 --push-every 6 --minutes 10`

At 1,000 tenants the scale bench saw the web process grow for 30 minutes
(139 -> 224 MB) while a one-tenant soak stayed flat. What differs is the
spread: every push of a 20 s rhythm finds its source's cached facts expired
(they live a few seconds), so the process reloads a source's meta, its
compiled schema check and its tenant's quota on nearly every request, across
thousands of (tenant, source) pairs. This bench reproduces that shape on a
smaller world and says where the bytes go:

- builds N tenants x M pushing sources in a database of its own (the scale
  bench's builder, through the product's own services);
- runs one web process as `make up` does (uvicorn, one process), no worker or
  beat: only the ingest path is measured;
- pushes one event per source every --push-every s (longer than the source
  cache's life, so every push reloads, as at 1,000 tenants);
- samples the web process's RSS every --sample-s and prints the series, the
  growth after the warm-up and the growth per 10,000 requests, first half
  against second half (a leak keeps its slope; caches filling flatten);
- at the end, runs a full garbage collection in the web process and gives
  the RSS before and after it: what it gives back was garbage the ingest
  path's tuned collector (engines/ingest/fastpath.py tune_gc) had not
  reached yet, not a leak;
- with --frames N (12 by default; 0 turns tracing off, about 2x faster per
  request) it takes a tracemalloc snapshot after the warm-up and at the end
  and prints the 15 places whose live allocations grew the most, with
  their tracebacks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tracemalloc
import urllib.request
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._world import OUT_DIR, free_port, log
from bench.scale import HERE, Pusher, ScaleWorld

DATABASE = "beastflow_bench_memory"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--sources", type=int, default=3, help="pushing sources per tenant")
    parser.add_argument("--push-every", type=float, default=6.0, help="seconds between a source's events")
    parser.add_argument("--minutes", type=float, default=10.0, help="measured time after the warm-up")
    parser.add_argument("--warmup-s", type=float, default=90.0)
    parser.add_argument("--sample-s", type=float, default=30.0)
    parser.add_argument("--frames", type=int, default=12, help="tracemalloc frames; 0 turns tracing off")
    parser.add_argument("--database", default=DATABASE, help="the bench's own database (dropped and made anew)")
    return parser.parse_args()


def rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 1e6


def snapshot(port: int, name: str) -> Path:
    path = OUT_DIR / f"web-memory-{name}.snap"
    url = f"http://127.0.0.1:{port}/__bench/snapshot?path={path}"
    with urllib.request.urlopen(url, timeout=120) as response:
        if response.status != 204:
            raise RuntimeError(f"snapshot answered {response.status}")
    return path


def collect(port: int) -> dict[str, Any]:
    """A full collection in the web process: what it found (bench/_traced_app.py)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/__bench/collect", timeout=120) as response:
        return dict(json.loads(response.read()))


def growth(before: Path, after: Path, top: int = 15) -> list[dict[str, Any]]:
    old, new = tracemalloc.Snapshot.load(str(before)), tracemalloc.Snapshot.load(str(after))
    stats = [s for s in new.compare_to(old, "traceback") if s.size_diff > 0][:top]
    return [
        {
            "kib": round(s.size_diff / 1024, 1),
            "blocks": s.count_diff,
            "where": [f"{frame.filename}:{frame.lineno}" for frame in s.traceback],
        }
        for s in stats
    ]


def _telling(frames: list[str]) -> list[str]:
    """The innermost frame and the innermost few of our own code (oldest first, as tracemalloc orders them)."""
    ours = [frame for frame in frames if frame.startswith(str(HERE)) and "/.venv/" not in frame]
    shown = ours[-4:]
    return shown if frames[-1] in shown else [*shown, "...", frames[-1]]


def slope(series: list[tuple[float, float, int]]) -> tuple[float, float]:
    """MB per 10,000 requests in the first and the second half of the measured series."""
    middle = len(series) // 2

    def per_10k(part: list[tuple[float, float, int]]) -> float:
        (_, mb0, n0), (_, mb1, n1) = part[0], part[-1]
        return (mb1 - mb0) / max(1, n1 - n0) * 10_000

    return per_10k(series[: middle + 1]), per_10k(series[middle:])


def main() -> int:
    args = parse_args()
    world = ScaleWorld(HERE, database=args.database)
    try:
        world.create_database()
        spec = {
            "kinds": ["pushing"] * args.sources,
            "specs": {
                "pushing": {
                    "name": "",
                    "connector": "http",
                    "config": {"poll_url": "http://127.0.0.1:9/changes", "expected_interval_s": args.push_every},
                }
            },
        }
        started = time.monotonic()
        tenants = world.build(0, args.tenants, spec, deadline=time.monotonic() + 3600)
        log(f"built {len(tenants)} tenants x {args.sources} sources in {time.monotonic() - started:.0f} s")

        port = free_port()
        argv = [sys.executable, "-m", "uvicorn", "bench._traced_app:application", "--port", str(port)]
        web = world.spawn("memory-web", [*argv, "--no-access-log"], PYTHONTRACEMALLOC=str(args.frames))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        targets = [(s["id"], t.api_key) for t in tenants for s in t.sources]
        pusher = Pusher(port, targets, args.push_every).start()
        log(
            f"pushing to {len(targets)} sources, an event every {args.push_every:g} s each; warm-up {args.warmup_s:g} s"
        )
        time.sleep(args.warmup_s)
        first = snapshot(port, "warm") if args.frames else None

        series: list[tuple[float, float, int]] = []
        end = time.monotonic() + args.minutes * 60
        zero = time.monotonic()
        while True:
            series.append((time.monotonic() - zero, rss_mb(web.popen.pid), pusher.sent))
            log(
                f"t={series[-1][0]:6.0f} s  web RSS {series[-1][1]:7.1f} MB  sent {pusher.sent}  failed {pusher.failed}"
            )
            if time.monotonic() >= end:
                break
            time.sleep(min(args.sample_s, max(0.0, end - time.monotonic())))
        pusher.stop()
        # Garbage or in use? The RSS a full collection gives back (pymalloc returns
        # emptied arenas) was garbage the tuned collector had not reached yet.
        before_gc = rss_mb(web.popen.pid)
        collected = collect(port)
        after_gc = rss_mb(web.popen.pid)
        last = snapshot(port, "end") if args.frames else None

        early, late = slope(series)
        report = {
            "tenants": len(tenants),
            "sources": len(targets),
            "push_every_s": args.push_every,
            "requests": series[-1][2] - series[0][2],
            "failed": pusher.failed,
            "rss_mb": {
                "after_warmup": round(series[0][1], 1),
                "end": round(series[-1][1], 1),
                "before_full_gc": round(before_gc, 1),
                "after_full_gc": round(after_gc, 1),
            },
            "full_gc": {"unreachable": collected["unreachable"], "seconds": collected["seconds"]},
            "mb_per_10k_requests": {"first_half": round(early, 3), "second_half": round(late, 3)},
            "series": [(round(t), round(mb, 1), n) for t, mb, n in series],
            "tracemalloc_growth": growth(first, last) if first and last else None,
        }
        (OUT_DIR / "web-memory.json").write_text(json.dumps(report, indent=2))
        print(json.dumps({k: v for k, v in report.items() if k not in ("series", "tracemalloc_growth")}, indent=2))
        for item in report["tracemalloc_growth"] or []:
            print(f"+{item['kib']:>9} KiB {item['blocks']:>+8} blocks")
            for where in _telling(item["where"]):
                print(f"      {where}")
        return 0
    finally:
        world.close()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
