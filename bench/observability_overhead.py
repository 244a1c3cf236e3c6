"""What metrics, tracing and capacity tracking cost the ingest path: the same load, on and off, in one run.

`.venv/bin/python bench/observability_overhead.py [--duration S] [--rounds N]`

Sets up its own world like bench/ingest.py (its own database,
`beastflow_bench_obs`, so it can run beside `make bench`), one tenant with its
quota lifted, and one uvicorn server (1 worker, `beastflow.asgi:application`)
per variant, all started before the first measurement:

| variant | PROMETHEUS_MULTIPROC_DIR | tracing | capacity tracking |
| --- | --- | --- | --- |
| `bare` | unset (metrics in process memory) | off | off |
| `capacity` | unset | off | on |
| `metrics` | a fresh folder (as `make up`) | off | on |
| `traced-1pct` | a fresh folder | OTLP/HTTP, batch processor, `parentbased_traceidratio` 0.01 | on |
| `traced-all` | a fresh folder | OTLP/HTTP, batch processor, every push sampled | on |

First (`--micro-only` runs just this), in this process and without a server,
what the two recorders add where they sit, in CPU time: the ingest capacity
recorder around a trivial ASGI app (per request) and the monitor's flight
recorder (per judgement), best of 3 x 20,000.

Tracing exports to a sink in this process that answers 200 to every POST
(so the exporter serialises and sends every batch, as it would to a collector).

Each round runs, on every variant in turn, single-event signed webhooks (32
concurrent) and 1,000-event batches (4 concurrent), `--duration` seconds
each. The machine is shared and noisy, so the figure that matters is the
server's CPU per event (measured with psutil), compared with `bare` round
by round; the throughput ratio is printed too. The medians over the rounds
are printed and written to .beastflow/bench/observability_overhead.json.
After every phase the database is checked to hold exactly what was acknowledged.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import uvloop

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._client import closed_loop
from bench._cpu import CpuMeter
from bench._report import say
from bench._world import OUT_DIR, Server, Tenant, World, log
from bench.ingest import BATCH_SIZE, SINGLE_CONCURRENCY, batches, check_stored, signed_singles

# Its own database: bench/ingest.py drops and recreates `beastflow_bench` when it starts.
DATABASE = "beastflow_bench_obs"

BATCH_CONCURRENCY = 4
UNSET = "\0unset"  # a variant's value that removes the variable from the server's environment


class _Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector that keeps nothing: read the body, answer 200."""

    spans_posts = 0

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        _Sink.spans_posts += 1
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@dataclass(frozen=True)
class Variant:
    name: str
    env: dict[str, str]


class ObsWorld(World):
    """bench/_world.World whose servers each get the environment of their variant."""

    def __init__(self) -> None:
        super().__init__(database=DATABASE)
        self.next_env: dict[str, str] = {}

    def env(self, **extra: str) -> dict[str, str]:
        # The sources' (never polled) loopback poll_url must pass the URL guard.
        merged = {**super().env(**extra), "BEASTFLOW_UPSTREAM_ALLOW": "127.0.0.0/8", **self.next_env}
        # prometheus_client goes multiprocess when the variable exists at all, even empty.
        return {name: value for name, value in merged.items() if value != UNSET}

    def start_variant(self, variant: Variant) -> Server:
        self.next_env = variant.env
        try:
            return self.start_server(variant.name, "beastflow.asgi:application")
        finally:
            self.next_env = {}


def variants(sink_port: int, folder: Path) -> list[Variant]:
    no_tracing = {
        "OTEL_SDK_DISABLED": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": UNSET,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": UNSET,
        "PROMETHEUS_MULTIPROC_DIR": UNSET,
    }
    tracing = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_SDK_DISABLED": "false",
    }

    def metrics_dir(name: str) -> str:
        path = folder / name
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    return [
        Variant("bare", {**no_tracing, "BEASTFLOW_CAPACITY_INGEST": "0"}),
        Variant("capacity", {**no_tracing, "BEASTFLOW_CAPACITY_INGEST": "1"}),
        Variant(
            "metrics",
            {**no_tracing, "BEASTFLOW_CAPACITY_INGEST": "1", "PROMETHEUS_MULTIPROC_DIR": metrics_dir("metrics")},
        ),
        Variant(
            "traced-1pct",
            {
                **tracing,
                "BEASTFLOW_CAPACITY_INGEST": "1",
                "PROMETHEUS_MULTIPROC_DIR": metrics_dir("traced-1pct"),
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.01",
            },
        ),
        Variant(
            "traced-all",
            {
                **tracing,
                "BEASTFLOW_CAPACITY_INGEST": "1",
                "PROMETHEUS_MULTIPROC_DIR": metrics_dir("traced-all"),
                "OTEL_TRACES_SAMPLER": "parentbased_always_on",
            },
        ),
    ]


async def measure(world: World, server: Server, tenant: Tenant, shape: str, duration: float) -> dict[str, Any]:
    source = tenant.sources[f"{server.name}-{shape}"]
    if shape == "single":
        make, concurrency = signed_singles(source), SINGLE_CONCURRENCY
    else:
        make, concurrency = batches(tenant, source, BATCH_SIZE), BATCH_CONCURRENCY
    with CpuMeter(server.proc.pid) as cpu:
        tally = await closed_loop(server.port, make, concurrency=concurrency, duration_s=duration, warmup_s=0.5)
    stored = check_stored(world, tenant, source, tally)
    server_cores = cpu.result.cores.get("server", 0.0)
    events_per_s = tally.events_per_s
    return {
        "events_per_s": round(events_per_s, 1),
        "server_cores": round(server_cores, 3),
        "server_cpu_us_per_event": round(1e6 * server_cores / events_per_s, 2) if events_per_s else None,
        "p50_ms": round(1000 * statistics.median(tally.latencies), 2) if tally.latencies else None,
        "errors": tally.errors,
        "stored_ok": bool(stored.get("ok", True)),
    }


def summarise(rounds: list[dict[str, dict[str, dict[str, Any]]]], names: list[str]) -> dict[str, Any]:
    """Medians over the rounds, and each variant against `bare` (ratios taken round by round, then the median)."""
    out: dict[str, Any] = {}
    for shape in ("single", "batch"):
        rows: dict[str, Any] = {}
        for name in names:
            per_round = [r[name][shape] for r in rounds]
            cpu_ratio = [
                r[name][shape]["server_cpu_us_per_event"] / r["bare"][shape]["server_cpu_us_per_event"]
                for r in rounds
                if r[name][shape]["server_cpu_us_per_event"] and r["bare"][shape]["server_cpu_us_per_event"]
            ]
            rate_ratio = [
                r[name][shape]["events_per_s"] / r["bare"][shape]["events_per_s"]
                for r in rounds
                if r["bare"][shape]["events_per_s"]
            ]
            rows[name] = {
                "events_per_s": round(statistics.median(p["events_per_s"] for p in per_round), 1),
                "server_cpu_us_per_event": _median([p["server_cpu_us_per_event"] for p in per_round]),
                "p50_ms": _median([p["p50_ms"] for p in per_round]),
                "cpu_per_event_vs_bare": _median(cpu_ratio, 3),
                "throughput_vs_bare": _median(rate_ratio, 3),
            }
        out[shape] = rows
    return out


def _median(values: list[Any], digits: int = 2) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), digits) if present else None


def print_summary(summary: dict[str, Any]) -> None:
    for shape, title in (
        ("single", "single-event webhooks, 32 concurrent"),
        ("batch", "1,000-event batches, 4 concurrent"),
    ):
        say(f"\n{title} (medians over the rounds)")
        header = f"{'variant':<12} {'events/s':>10} {'cpu us/event':>13} {'p50 ms':>8}"
        say(f"  {header} {'cpu x bare':>11} {'rate x bare':>12}")
        for name, row in summary[shape].items():
            say(
                f"  {name:<12} {row['events_per_s']:>10,.0f} {row['server_cpu_us_per_event'] or 0:>13.1f} "
                f"{row['p50_ms'] or 0:>8.2f} {row['cpu_per_event_vs_bare'] or 0:>11.3f} "
                f"{row['throughput_vs_bare'] or 0:>12.3f}"
            )


async def run(world: ObsWorld, args: argparse.Namespace, sink_port: int, folder: Path) -> dict[str, Any]:
    say("setting up: database, migrations, tenant")
    world.create_database()
    tenant = world.create_tenant("bench-obs")
    world.lift_quotas()
    chosen = variants(sink_port, folder)
    servers: dict[str, Server] = {}
    for variant in chosen:
        servers[variant.name] = world.start_variant(variant)
        for shape in ("single", "batch"):
            world.create_source(servers[variant.name], tenant, f"{variant.name}-{shape}")
    names = [v.name for v in chosen]
    rounds: list[dict[str, dict[str, dict[str, Any]]]] = []
    for n in range(args.rounds):
        figures: dict[str, dict[str, dict[str, Any]]] = {}
        # A different order each round, so no variant always follows the same one.
        order = names[n % len(names) :] + names[: n % len(names)]
        for name in order:
            figures[name] = {}
            for shape in ("single", "batch"):
                figures[name][shape] = await measure(world, servers[name], tenant, shape, args.duration)
            single, batch = figures[name]["single"], figures[name]["batch"]
            say(
                f"  round {n + 1} {name:<12} single {single['events_per_s']:>7,.0f} ev/s "
                f"{single['server_cpu_us_per_event'] or 0:>6.1f} us/ev; batch {batch['events_per_s']:>7,.0f} ev/s "
                f"{batch['server_cpu_us_per_event'] or 0:>6.1f} us/ev"
            )
        rounds.append(figures)
    ok = all(f[shape]["stored_ok"] for r in rounds for f in r.values() for shape in ("single", "batch"))
    return {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": {"duration_s": args.duration, "rounds": args.rounds, "variants": {v.name: v.env for v in chosen}},
        "rounds": rounds,
        "summary": summarise(rounds, names),
        "sink_posts": _Sink.spans_posts,
        "integrity_ok": ok,
    }


def micro(iterations: int = 20_000, repeats: int = 3) -> dict[str, float]:
    """Microseconds the ingest capacity recorder adds per request and the flight recorder per judgement."""
    import engines.flight as flight
    from engines.health import StreamSignals
    from engines.hysteresis import HysteresisState
    from observability.ingest_capacity import IngestCapacityRecorder, _Tallies

    body = b'{"accepted": 1, "duplicates": 0}'

    async def trivial(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": body})

    recorded = IngestCapacityRecorder(trivial, into=_Tallies(flush_in_thread=False))
    recorded.on = True
    scope = {"type": "http", "method": "POST", "path": "/api/v1/sources/42/events", "headers": []}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    # CPU time of this process, not wall time: on a shared machine other processes' load would count too.
    async def per_request(app: Any) -> float:
        started = time.process_time()
        for _ in range(iterations):
            await app(scope, receive, send)
        return (time.process_time() - started) / iterations

    async def both() -> tuple[float, float]:
        bare = min([await per_request(trivial) for _ in range(repeats)])
        wrapped = min([await per_request(recorded) for _ in range(repeats)])
        return bare, wrapped

    bare, wrapped = uvloop.run(both())
    flight._buffer = flight._Buffer(flush_in_thread=False)
    now = time.time()
    signals = StreamSignals(
        now=now, last_event_at=now - 0.4, last_heartbeat_at=now - 2.0, expected_interval_s=1.0, contiguous_seq=123456,
        highest_seq=123456, upstream_seq=123460, push_errors=0, push_total=40, delivery_rate=9.5, baseline_rate=10.1,
        watching_since=now - 86400, missed_pushes=None,
    ).as_dict()  # fmt: skip
    state = HysteresisState.initial(now=now - 600).to_dict()
    config = {"hysteresis": {"fail_threshold": 3}, "health": {}}
    timings = []
    for _ in range(repeats):
        started = time.process_time()
        for n in range(iterations):
            flight.note(source_id=n % 200, now=now, signals=signals, mode="event", state=state, config=config)
        timings.append((time.process_time() - started) / iterations)
        flight._buffer.take()
    figures = {
        "load_average_1m": round(os.getloadavg()[0], 2),  # on a shared machine, what the figures were taken under
        "asgi_request_us": round(bare * 1e6, 2),
        "capacity_recorder_added_us": round((wrapped - bare) * 1e6, 2),
        "flight_note_us": round(min(timings) * 1e6, 2),
    }
    say(
        f"micro: the capacity recorder adds {figures['capacity_recorder_added_us']} us per ingest request "
        f"(a trivial ASGI request: {figures['asgi_request_us']} us); the flight recorder "
        f"{figures['flight_note_us']} us per judgement (load average {figures['load_average_1m']})"
    )
    return figures


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per shape, variant and round (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every variant (default 3)")
    parser.add_argument("--micro-only", action="store_true", help="only the in-process recorder costs")
    args = parser.parse_args(argv)
    figures = micro()
    if args.micro_only:
        return 0
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, name="otlp-sink", daemon=True).start()
    world = ObsWorld()
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="bf-obs-metrics-") as folder:
            report = uvloop.run(run(world, args, sink.server_address[1], Path(folder)))
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        world.close()
        sink.shutdown()
    report["wall_s"] = round(time.perf_counter() - started, 1)
    report["micro"] = figures
    print_summary(report["summary"])
    out = OUT_DIR / "observability_overhead.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    say(f"\nwritten {out} in {report['wall_s']} s; the sink took {report['sink_posts']} OTLP posts")
    return 0 if report["integrity_ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
