"""Scale: N tenants x M sources on the real service; does the monitor keep up, what does it cost?

`make bench` (or `.venv/bin/python bench/scale.py --sizes 10,100,1000`).
Builds its own database (beastflow_bench_scale) and runs the real
processes: one web (uvicorn), Celery workers (by default a monitor worker
of one process and one of two processes for the other queues, as a small
production would; --workers up: as `make up` runs them, the batch queues at a
lower priority; --workers single: one worker for every queue), one beat,
plus the simulator as the polled upstream and this process pushing.
Tenants grow size by size (10, then 90 more, ...), each with M sources in a mix (per tenant, by default):

- pushing (2): push one event every --push-every s (20; expected_interval_s = that);
- polling (1): an upstream without webhooks (`push.expected` false), polled
  from the simulator's feed (every 30 s, growing to 300 s while it brings
  nothing);
- idle (7): an hour's expected rhythm, never pushed to: healthy and quiet;
- silent (0; a fourth --mix weight): a push expected that never comes, so
  it goes silent, degrades, settles in polling and keeps a failure open
  (what the polling cohort was before `push.expected` existed; --reuse of
  such a world declares them polling-only unless --silent-polling).

Per size, after a warm-up, over --measure-s: tenant creation time (the
build's, back to back with their sources, and --probe-tenants more created a
few seconds apart during the measurement: what a customer signing up meets
under the world's load), the monitor's lag (per judgement: how long after its deadline it came; for
the old per-tick scheduler the deadline is the previous judgement plus
one tick), sources never judged in the window, queue depth and oldest
message age per queue, tasks/s (Celery's own counters), CPU per process
and per source, worker memory. At the end an idle phase (pushing and
polling sources paused) and a baseline (every source paused) give what idle
sources cost: the difference, the rest being the tenants' own and the clock's;
divided by the judgements in the window, the cost of one idle judgement, and
at the steady rate (one per BEASTFLOW_MONITOR_IDLE_S less the spread) what a
thousand idle sources cost whatever the window caught.

--outage-s D stops the whole service (web, workers, beat) after the last
size for D seconds while the upstreams keep pushing (each push retried until
delivered, as Stripe's webhooks are), starts it again and measures
--after-outage-s in one-minute slices, with the mode switches the monitor
made meanwhile: what a restart after an outage costs. A --keep world keeps
its Redis namespace too, as Redis outlives a restart of the service.

--root runs another checkout with the same builder (bench/_scale_build.py),
e.g. `git worktree add /tmp/bf-before <commit>` for a before/after table.
Building is bounded by --max-build-s: past it the run measures the size it
reached and says so. Writes .beastflow/bench/scale-<label>.json; the
processes' output goes to .beastflow/bench/scale-<process>.log
(SCALE_WORKER_LOG=INFO logs every task the worker runs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

import psutil
import redis
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._client import Connection, HttpError, Request, percentile
from bench._launched import answers
from bench._world import OUT_DIR, World, free_port, log, stop_group

HERE = Path(__file__).resolve().parent.parent
DATABASE = "beastflow_bench_scale"
WORLD_FILE = OUT_DIR / "scale-world.jsonl"  # the tenants a --keep run made, for --reuse
# The Redis namespace of a kept world: Redis outlives a restart of BeastFlow in production, and with it
# what the service remembers there (the monitor's memory, its last pass: engines/watch.py).
WORLD_REDIS_FILE = OUT_DIR / "scale-world-redis"
QUEUES = ("celery", "monitor", "polls", "reconcile", "healing", "callbacks")
BUILD_CHUNK = 50  # tenants built between two restarts of the pusher
KEEP_ALIVE_S = 4.0  # the pusher reopens a connection idle longer (the server keeps one 5 s)
SLICE_S = 300.0  # a long measurement reports every 5 minutes
TICK_S = 1.0  # the monitor tick both schedulers run with (BEASTFLOW_MONITOR_TICK_S default)
IDLE_S = 300.0  # BEASTFLOW_MONITOR_IDLE_S default: how often an idle source is judged, at most
IDLE_SPREAD = 0.2  # engines.deadlines.IDLE_SPREAD: up to this share of IDLE_S early (--root may be an older checkout)


def source_specs(sim_port: int, push_every_s: float) -> dict[str, dict[str, Any]]:
    feed = f"http://127.0.0.1:{sim_port}/changes"
    return {
        "pushing": {"name": "", "connector": "http", "config": {"poll_url": feed, "expected_interval_s": push_every_s}},
        "polling": {
            "name": "",
            "connector": "http",
            "push": {"expected": False},
            "config": {"poll_url": feed, "expected_interval_s": 2.0},
            "poll": {"min_interval_s": 30.0, "max_interval_s": 300.0},
        },
        "idle": {"name": "", "connector": "http", "config": {"poll_url": feed, "expected_interval_s": 3600.0}},
        "silent": {
            "name": "",
            "connector": "http",
            "config": {"poll_url": feed, "expected_interval_s": 2.0},
            "poll": {"min_interval_s": 30.0, "max_interval_s": 300.0},
        },
    }


@dataclass
class TenantInfo:
    slug: str
    schema: str
    api_key: str
    create_s: float
    sources: list[dict[str, Any]]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_file: IO[bytes]
    argv: list[str] = field(default_factory=list)  # how it was started, for a restart (--outage-s)
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.popen.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        stop_group(self.popen, timeout_s=15)
        self.log_file.close()


class ScaleWorld(World):
    """bench/_world.World on a database of its own, running the checkout at `root`."""

    def __init__(self, root: Path, *, database: str = DATABASE) -> None:
        super().__init__(database=database, root=root)
        self.procs: list[Proc] = []
        self.settings: dict[str, str] = {}  # --set: given to every process
        self.nice: dict[str, int] = {}  # --nice-others: process name -> niceness

    def env(self, **extra: str) -> dict[str, str]:
        # The simulator upstream listens on loopback, which the outbound URL guard refuses unless allowed.
        return super().env(BEASTFLOW_UPSTREAM_ALLOW="127.0.0.0/8", **{**self.settings, **extra})

    def spawn(self, name: str, argv: list[str], *, cwd: Path | None = None, append: bool = False, **env: str) -> Proc:
        log_file = (OUT_DIR / f"scale-{name}.log").open("ab" if append else "wb")
        niceness = self.nice.get(name, 0)
        popen = subprocess.Popen(
            argv,
            cwd=cwd or self.root,
            env=self.env(**env),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=(lambda: os.nice(niceness)) if niceness else None,  # spawned before any thread starts
        )
        proc = Proc(name, popen, log_file, argv, cwd, env)
        self.procs.append(proc)
        return proc

    def outage(self, names: tuple[str, ...], down_s: float, web_port: int) -> tuple[float, float]:
        """Stop these processes (the whole service), wait `down_s`, start them again; (down at, up at), epoch.

        What an outage of the service is to its upstreams: pushes refused for as long, then accepted again.
        """
        stopped = [proc for proc in self.procs if proc.name in names]
        down_at = time.time()
        for proc in stopped:
            proc.stop()
            self.procs.remove(proc)
        time.sleep(down_s)
        up_at = time.time()
        for proc in stopped:
            self.spawn(proc.name, proc.argv, cwd=proc.cwd, append=True, **proc.env)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and answers(f"http://127.0.0.1:{web_port}/healthz") != 200:
            time.sleep(0.5)
        return down_at, up_at

    def switches_since(self, tenants: list[TenantInfo], since: float) -> dict[str, int]:
        """Mode switches since `since` (epoch), by transition, across the tenants."""
        counts: dict[str, int] = {}
        with self.connect(autocommit=True) as conn:
            for tenant in tenants:
                rows = conn.execute(
                    sql.SQL("SELECT transition, count(*) FROM {} WHERE at >= to_timestamp(%s) GROUP BY 1").format(
                        sql.Identifier(tenant.schema, "engines_modeswitch")
                    ),
                    [since],
                ).fetchall()
                for transition, count in rows:
                    counts[transition] = counts.get(transition, 0) + int(count)
        return counts

    def build(self, first: int, last: int, spec: dict[str, Any], deadline: float) -> list[TenantInfo]:
        """Tenants first..last-1, in chunks, until done or past `deadline` (monotonic)."""
        made: list[TenantInfo] = []
        step = 25
        for start in range(first, last, step):
            if time.monotonic() > deadline:
                log(f"build bound reached: {len(made)} of {last - first} new tenants made")
                break
            chunk = [str(start), str(min(last, start + step)), json.dumps(spec)]
            done = subprocess.run(
                [sys.executable, str(HERE / "bench" / "_scale_build.py"), *chunk],
                cwd=self.root,
                env=self.env(BENCH_ROOT=str(self.root), DJANGO_SETTINGS_MODULE="beastflow.settings"),
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"building tenants {start}..: {done.stderr[-3000:]}")
            for line in done.stdout.splitlines():
                if line.startswith("{"):
                    made.append(TenantInfo(**json.loads(line)))
        return made

    def close(self) -> None:
        for proc in reversed(self.procs):
            try:
                proc.stop()
            except Exception as exc:  # keep cleaning up
                log(f"stopping {proc.name}: {exc!r}")
        self.procs.clear()
        super().close()  # drops the database unless --keep


# -- load: pushes ------------------------------------------------------------------


class Pusher:
    """Each pushing source gets one event every `every_s`, phases spread at random; keep-alive connections.

    A push that fails is sent again (at once, then 1 s doubling, RETRIES times), as a real sender does: a push lost
    for good leaves a seq gap the simulated upstream's feed cannot fill, and the source then cycles
    through hybrid and polling for the rest of the run, which is the bench's doing, not the service's.
    """

    RETRIES = 6
    PATIENT_MAX_DELAY_S = 30.0  # `patient`: retried until delivered, at most this apart (Stripe retries for days)

    def __init__(
        self,
        port: int,
        targets: list[tuple[int, str]],
        every_s: float,
        connections: int = 12,
        seqs: dict[int, int] | None = None,
    ) -> None:
        self.port, self.every_s, self.connections = port, every_s, connections
        self.targets = targets
        # The last seq sent per source, shared by the pushers of one run: a pusher restarted with more
        # targets goes on from there (from 1 again, its pushes would all be duplicates).
        self.seqs = seqs if seqs is not None else {}
        self.sent = 0
        self.failed = 0  # given up on after RETRIES attempts
        self.retried = 0
        self.patient = False  # through an outage of the service: every push retried until it is delivered
        self.stopping = threading.Event()
        self.added: queue.SimpleQueue[list[tuple[int, str]]] = queue.SimpleQueue()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True, name="pusher")

    def start(self) -> Pusher:
        self.thread.start()
        return self

    def add(self, targets: list[tuple[int, str]]) -> None:
        """Push to these sources too, from now on (thread-safe; nothing queued is dropped, unlike a restart)."""
        self.added.put(targets)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=15)

    async def _run(self) -> None:
        # Unbounded: a backlog shows as pushes arriving late, never as pushes lost (after --outage-s, 14,738 of
        # the retries found a queue of 10,000 full, and their seqs were gaps no poll of the simulator could fill).
        queue: asyncio.Queue[tuple[Request, int]] = asyncio.Queue()
        workers = [asyncio.create_task(self._send(queue)) for _ in range(self.connections)]
        rng = random.Random(7)
        seqs = self.seqs
        for sid, _ in self.targets:
            seqs.setdefault(sid, 0)
        due = sorted((time.monotonic() + rng.uniform(0, self.every_s), sid, key) for sid, key in self.targets)
        while not self.stopping.is_set():
            now = time.monotonic()
            while not self.added.empty():
                for sid, key in self.added.get():
                    seqs.setdefault(sid, 0)
                    due.append((now + rng.uniform(0, self.every_s), sid, key))
                due.sort()
            while due and due[0][0] <= now:
                at, sid, key = due.pop(0)
                seqs[sid] += 1
                n = seqs[sid]
                event = {"id": f"e{n}", "type": "upsert", "key": f"k{n % 20}", "version": n, "seq": n, "data": {"n": n}}
                body = json.dumps({"events": [event]}).encode()
                headers = (("Authorization", f"Bearer {key}"), ("Content-Type", "application/json"))
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait((Request("POST", f"/api/v1/sources/{sid}/events", body, headers), 0))
                due.append((at + self.every_s, sid, key))
                due.sort()
            await asyncio.sleep(0.05)
        for task in workers:
            task.cancel()

    async def _send(self, queue: asyncio.Queue[tuple[Request, int]]) -> None:
        conn = Connection(self.port)
        used = time.monotonic()
        while True:
            request, attempt = await queue.get()
            if time.monotonic() - used > KEEP_ALIVE_S:
                # The server closes a connection idle 5 s (uvicorn's keep-alive): a push sent on it as the close
                # crosses it fails. At a few pushes a second most connections idle that long (N=10: 209
                # failures in 247 pushes), so an idle connection is closed here first.
                await conn.close()
            used = time.monotonic()
            try:
                response = await conn.send(request)
                ok = 200 <= response.status < 300
            except (HttpError, OSError):
                ok = False
                await conn.close()
            if ok:
                self.sent += 1
            elif (attempt >= self.RETRIES and not self.patient) or self.stopping.is_set():
                self.failed += 1
            else:
                self.retried += 1
                # A connection lost: at once on a new one, then 1 s doubling.
                delay = 0.0 if attempt == 0 else 2.0 ** min(attempt - 1, 16)
                if self.patient:
                    delay = min(delay, self.PATIENT_MAX_DELAY_S)
                asyncio.get_running_loop().call_later(delay, self._again, queue, request, attempt + 1)

    def _again(self, queue: asyncio.Queue[tuple[Request, int]], request: Request, attempt: int) -> None:
        try:
            queue.put_nowait((request, attempt))
        except asyncio.QueueFull:  # a retry with no room is a push lost, and counted as one
            self.failed += 1


# -- measuring ---------------------------------------------------------------------


@dataclass
class Sampler:
    """Every second: the monitor's memory of every source (lag per judgement), the queues, the backlog."""

    client: redis.Redis
    prefix: str
    keys: list[tuple[str, int]]  # (schema, source id)
    world: ScaleWorld
    lags: list[float] = field(default_factory=list)
    judged: set[int] = field(default_factory=set)
    depth: dict[str, list[int]] = field(default_factory=dict)
    queue_age: dict[str, float] = field(default_factory=dict)
    backlog: list[float] = field(default_factory=list)
    last: dict[int, float] = field(default_factory=dict)
    pg_active: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        self._sample(record=False)
        while not self.stopping.wait(1.0):
            self._sample(record=True)

    def _sample(self, *, record: bool) -> None:
        now = time.time()
        with self.client.pipeline(transaction=False) as pipe:
            for schema, sid in self.keys:
                pipe.hmget(f"{self.prefix}:monitor:{schema}:{sid}", "at", "due")
            for queue in QUEUES:
                base = f"{self.prefix}:celery:{queue}"
                pipe.llen(base)
                pipe.lindex(base, -1)
            replies = pipe.execute()
        worst = 0.0
        for (_, sid), (raw_at, raw_due) in zip(self.keys, replies[: len(self.keys)], strict=True):
            if raw_at is None:
                continue
            at = float(raw_at)
            previous = self.last.get(sid)
            if previous is not None and at > previous and record:
                # The new scheduler says when the source was due; the old one judged every tick.
                due = float(raw_due) if raw_due is not None else previous + TICK_S
                self.lags.append(max(0.0, at - due))
                self.judged.add(sid)
            self.last[sid] = at
            worst = max(worst, now - at - TICK_S) if raw_due is None else worst
        rest = replies[len(self.keys) :]
        for n, queue in enumerate(QUEUES):
            length, oldest = rest[2 * n], rest[2 * n + 1]
            if record:
                self.depth.setdefault(queue, []).append(int(length or 0))
            if oldest is not None and record:
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    sent = json.loads(oldest)["headers"].get("bf_sent_at")
                    if sent is not None:
                        self.queue_age[queue] = max(self.queue_age.get(queue, 0.0), now - float(sent))
        if record:
            self.backlog.append(max(worst, self._db_backlog()))
            self._pg_sample()

    def _pg_sample(self) -> None:
        with contextlib.suppress(Exception), self.world.connect(autocommit=True) as conn:
            rows = conn.execute(
                "SELECT coalesce(wait_event_type, 'CPU'), count(*) FROM pg_stat_activity"
                " WHERE datname = %s AND state = 'active' AND pid <> pg_backend_pid() GROUP BY 1",
                [DATABASE],
            ).fetchall()
            self.samples += 1
            for kind, n in rows:
                self.pg_active[str(kind)] = self.pg_active.get(str(kind), 0) + int(n)

    def _db_backlog(self) -> float:
        """The new scheduler's oldest due-but-unjudged source (0 where there is no schedule table)."""
        try:
            with self.world.connect(autocommit=True) as conn:
                row = conn.execute(
                    "SELECT extract(epoch FROM now() - min(next_eval_at)) FROM scheduling_sourceschedule"
                    " WHERE next_eval_at <= now()"
                ).fetchone()
                return float(row[0]) if row and row[0] is not None else 0.0
        except Exception:
            return 0.0


class TenantProbe:
    """New tenants created during a measurement, a few seconds apart, in a child (bench/_scale_probe_tenants.py).

    The build's creation times are of tenants made back to back with their sources; these are what one
    customer signing up meets while the service carries the world's load.
    """

    def __init__(self, world: ScaleWorld, count: int, *, every_s: float) -> None:
        self.world, self.count, self.every_s = world, count, every_s
        self.times: list[float] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        if self.count > 0:
            self.thread.start()

    def _run(self) -> None:
        done = subprocess.run(
            [sys.executable, str(HERE / "bench" / "_scale_probe_tenants.py"), str(self.count), str(self.every_s)],
            cwd=self.world.root,
            env=self.world.env(BENCH_ROOT=str(self.world.root), DJANGO_SETTINGS_MODULE="beastflow.settings"),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            log(f"tenant probe failed: {done.stderr[-2000:]}")
        self.times = [json.loads(line)["create_s"] for line in done.stdout.splitlines() if line.startswith("{")]

    def join(self) -> dict[str, Any] | None:
        """p50 and max of the creations (s), or None without any."""
        if self.count <= 0:
            return None
        self.thread.join(timeout=600)
        if not self.times:
            return None
        return {"n": len(self.times), "p50": round(statistics.median(self.times), 3), "max": round(max(self.times), 3)}


def _bench_backends(world: ScaleWorld) -> set[int]:
    """PostgreSQL backends serving the bench database (others on this machine are not ours)."""
    try:
        with world.connect(autocommit=True) as conn:
            rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [DATABASE]).fetchall()
            return {int(row[0]) for row in rows}
    except Exception:
        return set()


def cpu_snapshot(world: ScaleWorld) -> dict[int, tuple[str, float]]:
    """CPU seconds used so far, per process, with the group it counts in."""
    taken: dict[int, tuple[str, float]] = {}
    for proc in world.procs:
        for p in proc.tree():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                taken[p.pid] = (proc.name, t.user + t.system)
    groups = {pid: "postgres" for pid in _bench_backends(world)}
    groups[os.getpid()] = "bench"
    for p in psutil.process_iter(["name"]):
        if "redis" in (p.info.get("name") or "").lower():
            groups[p.pid] = "redis (shared)"
    for pid, group in groups.items():
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            taken[pid] = (group, t.user + t.system)
    return taken


def run_delay_snapshot(world: ScaleWorld) -> dict[int, tuple[str, float]]:
    """Seconds each process of the service spent runnable but waiting for a CPU (Linux schedstat, all threads).

    Beside the CPU it used, this tells a process slowed by the machine's run
    queue from one waiting on PostgreSQL or Redis.
    """
    waited: dict[int, tuple[str, float]] = {}
    for proc in world.procs:
        for p in proc.tree():
            total = 0.0
            for stat in Path(f"/proc/{p.pid}/task").glob("*/schedstat"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    total += int(stat.read_text().split()[1]) / 1e9
            waited[p.pid] = (proc.name, total)
    return waited


def cores_between(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], wall: float
) -> dict[str, float]:
    """Cores used per group; a process born meanwhile counts whole, one that ended is lost (never negative)."""
    used: dict[str, float] = {}
    for pid, (group, total) in after.items():
        earlier = before.get(pid, (group, 0.0))[1]
        used[group] = used.get(group, 0.0) + max(0.0, total - earlier)
    return {group: round(value / wall, 3) for group, value in used.items()}


def rss_mb(world: ScaleWorld, name: str) -> float:
    total = 0
    for proc in world.procs:
        if proc.name == name:
            for p in proc.tree():
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
    return total / 1e6


def tasks_done(world: ScaleWorld) -> int | None:
    """Tasks the worker has received so far (Celery's own counters, over remote control)."""
    from celery import Celery

    app = Celery("bench", broker=world.redis_url)
    app.conf.broker_transport_options = {"global_keyprefix": f"{world.redis_prefix}:celery:"}
    try:
        stats = app.control.inspect(timeout=3).stats() or {}
        return sum(sum((s.get("total") or {}).values()) for s in stats.values())
    except Exception:
        return None
    finally:
        app.close()


def sql_in_every_schema(world: ScaleWorld, tenants: list[TenantInfo], statement: str) -> None:
    with world.connect(autocommit=True) as conn:
        for tenant in tenants:
            conn.execute(statement.replace("{schema}", tenant.schema))


def has_column(world: ScaleWorld, schema: str, table: str, column: str) -> bool:
    with world.connect(autocommit=True) as conn:
        row = conn.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = %s AND table_name = %s AND column_name = %s",
            [schema, table, column],
        ).fetchone()
    return row is not None


def streams_repaired(world: ScaleWorld, tenants: list[TenantInfo]) -> dict[int, int]:
    """A kept world's streams made whole again, and each pushing source's last seq (the pusher goes on from it).

    Seqs a past run's pusher lost (stopped with pushes queued) are in no feed: the simulated upstream
    serves its own. Left as they are, every reused run would measure gap fills that can never succeed.
    """
    last: dict[int, int] = {}
    pushing = [s["id"] for t in tenants for s in t.sources if s["kind"] == "pushing"]
    with world.connect(autocommit=True) as conn:
        for tenant in tenants:
            table = sql.Identifier(tenant.schema, "engines_streamstate")
            conn.execute(
                sql.SQL(
                    "UPDATE {} SET contiguous_seq = highest_seq, pending_seqs = '[]'::jsonb"
                    " WHERE highest_seq > contiguous_seq"
                ).format(table)
            )
            rows = conn.execute(
                sql.SQL("SELECT source_id, highest_seq FROM {} WHERE source_id = ANY(%s)").format(table), [pushing]
            ).fetchall()
            last.update({int(sid): int(seq or 0) for sid, seq in rows})
    return last


def polling_declared(world: ScaleWorld, tenants: list[TenantInfo]) -> int:
    """A kept world's polling sources built before `push.expected`, declared polling-only as its PATCH does.

    In SQL rather than a thousand PATCHes: the switch to polling, the closing of push failures and the schedule
    are the service's own doing once the row says so (the monitor drops the source when next due).
    """
    declared = 0
    with world.connect(autocommit=True) as conn:
        for tenant in tenants:
            cursor = conn.execute(
                sql.SQL(
                    "UPDATE {} SET push = push || '{{\"expected\": false}}'::jsonb, mode = 'polling',"
                    " mode_since = now(), hysteresis_state = '{{}}'::jsonb"
                    " WHERE name LIKE 'polling-%' AND NOT push ? 'expected'"
                ).format(sql.Identifier(tenant.schema, "engines_source"))
            )
            declared += cursor.rowcount
    return declared


def measure(
    world: ScaleWorld, tenants: list[TenantInfo], *, seconds: float, slice_s: float = SLICE_S
) -> dict[str, Any]:
    keys = [(t.schema, s["id"]) for t in tenants for s in t.sources]
    sampler = Sampler(redis.Redis.from_url(world.redis_url), world.redis_prefix, keys, world)
    thread = threading.Thread(target=sampler.run, daemon=True)
    cpu_before, tasks_before, started = cpu_snapshot(world), tasks_done(world), time.monotonic()
    delay_before = run_delay_snapshot(world)
    rss_before = {name: rss_mb(world, name) for name in ("worker", "worker-monitor", "web")}
    thread.start()
    # Long runs report in slices (lag and memory per slice): a drift, a slow leak or a herd shows as a trend.
    slices: list[dict[str, Any]] = []
    slice_s = min(seconds, slice_s)
    while (remaining := seconds - (time.monotonic() - started)) > 1.0:
        first = len(sampler.lags)
        time.sleep(min(slice_s, remaining))
        part = sampler.lags[first:]
        slices.append(
            {
                "at_s": round(time.monotonic() - started),
                "judgements": len(part),
                "lag_p50_s": round(percentile(part, 50), 2) if part else None,
                "lag_p99_s": round(percentile(part, 99), 2) if part else None,
                "lag_max_s": round(max(part), 2) if part else None,
                "rss_mb": {name: round(rss_mb(world, name)) for name in rss_before},
            }
        )
        if seconds > slice_s:
            log(f"slice {slices[-1]}")
    sampler.stopping.set()
    thread.join(timeout=30)
    wall = time.monotonic() - started
    cpu_after, tasks_after = cpu_snapshot(world), tasks_done(world)
    cores = cores_between(cpu_before, cpu_after, wall)
    runq = cores_between(delay_before, run_delay_snapshot(world), wall)
    overdue = _overdue(world)
    lags = sampler.lags
    n_sources = len(keys)
    scheduler_cores = sum(v for k, v in cores.items() if k.startswith("worker")) + cores.get("beat", 0.0)
    return {
        "sources": n_sources,
        "judgements": len(lags),
        # Old scheduler: every source is due every tick, so any not judged in the window was missed.
        # New: only what is due; those still waiting over 2 s past their deadline at the end.
        "never_judged": n_sources - len(sampler.judged) if overdue is None else None,
        "overdue_at_end": overdue,
        "lag_p50_s": round(percentile(lags, 50), 2) if lags else None,
        "lag_p99_s": round(percentile(lags, 99), 2) if lags else None,
        "lag_max_s": round(max(lags), 2) if lags else None,
        "backlog_max_s": round(max(sampler.backlog), 1) if sampler.backlog else None,
        "queue_depth_max": {q: max(v) for q, v in sampler.depth.items() if v and max(v) > 0},
        "queue_depth_mean": {q: round(statistics.fmean(v), 1) for q, v in sampler.depth.items() if v and max(v) > 0},
        "queue_age_max_s": {q: round(v, 1) for q, v in sampler.queue_age.items()},
        "tasks_per_s": None
        if tasks_before is None or tasks_after is None
        else round((tasks_after - tasks_before) / wall, 1),
        "cores": cores,
        # Threads of the group runnable but not running, on average (1.0: one was always waiting for a CPU).
        "run_queue_waiting": runq,
        # PostgreSQL backends of the bench database at work, per wait event type (CPU: none), mean per sample.
        "pg_active": {k: round(v / max(1, sampler.samples), 2) for k, v in sorted(sampler.pg_active.items())},
        "worker_and_beat_ms_per_source_per_s": round(1000 * scheduler_cores / max(1, n_sources), 3),
        "rss_mb": {name: [round(rss_before[name]), round(rss_mb(world, name))] for name in rss_before},
        "slices": slices,
    }


def _overdue(world: ScaleWorld) -> int | None:
    try:
        with world.connect(autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM scheduling_sourceschedule WHERE next_eval_at <= now() - interval '2 seconds'"
            ).fetchone()
            return int(row[0]) if row else 0
    except Exception:
        return None  # no schedule table: the old scheduler


SERVICE = ("web", "worker", "worker-monitor", "beat")


def outage_phase(
    world: ScaleWorld, tenants: list[TenantInfo], pusher: Pusher, port: int, args: argparse.Namespace
) -> dict[str, Any]:
    """The whole service down `--outage-s` while the upstreams keep pushing; then `--after-outage-s` measured.

    What a restart after an outage costs: the lag per slice after the service is back, and the switches
    the monitor made (a degrade is a source judged silent or gapped; the upstreams never stopped).
    """
    pusher.patient = True
    failed_before = pusher.failed
    log(f"outage: the service (web, workers, beat) down {args.outage_s:.0f}s, the upstreams pushing on")
    down_at, up_at = world.outage(SERVICE, args.outage_s, port)
    log(f"outage: the service is back after {up_at - down_at:.0f}s; measuring {args.after_outage_s:.0f}s")
    after = measure(world, tenants, seconds=args.after_outage_s, slice_s=60.0)
    switches = world.switches_since(tenants, up_at)
    pushing = sum(1 for t in tenants for s in t.sources if s["kind"] == "pushing")
    row = {
        "down_s": round(up_at - down_at, 1),
        "pushing_sources": pushing,
        "switches_after": switches,
        "pushes_lost": pusher.failed - failed_before,
        "measure": after,
    }
    m = after
    print(
        f"{args.label:<7} after an outage of {row['down_s']}s: lag p50 {m['lag_p50_s']}s p99 {m['lag_p99_s']}s "
        f"max {m['lag_max_s']}s | switches {switches} of {pushing} pushing sources | "
        f"pushes lost {row['pushes_lost']} | slices p99 {[s['lag_p99_s'] for s in m['slices']]}",
        flush=True,
    )
    return row


def print_row(label: str, size: int, row: dict[str, Any]) -> None:
    m = row["measure"]
    missed = f"never judged {m['never_judged']}" if m["overdue_at_end"] is None else f"overdue {m['overdue_at_end']}"
    print(
        f"{label:<7} N={size:<5} sources={m['sources']:<6} create p50 {row['create_p50_s']}s "
        f"max {row['create_max_s']}s, under load {row.get('create_under_load_s')} | "
        f"lag p50 {m['lag_p50_s']}s p99 {m['lag_p99_s']}s max {m['lag_max_s']}s, "
        f"{missed}, backlog max {m['backlog_max_s']}s | tasks/s {m['tasks_per_s']} | "
        f"queues max {m['queue_depth_max']} age {m['queue_age_max_s']} | cores {m['cores']} | "
        f"waiting for a CPU {m['run_queue_waiting']} | postgres active {m['pg_active']} | "
        f"worker+beat {m['worker_and_beat_ms_per_source_per_s']} ms/source/s | rss {m['rss_mb']} | pushes sent "
        f"{row['pushes_sent']} retried {row['pushes_retried']} failed {row['pushes_failed']}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1000", help="tenant counts, ascending (default 10,100,1000)")
    parser.add_argument("--sources", type=int, default=10, help="sources per tenant (M)")
    parser.add_argument("--mix", default="2,1,7", help="pushing,polling,idle[,silent] sources per tenant (scaled to M)")
    parser.add_argument(
        "--silent-polling",
        action="store_true",
        help="with --reuse: leave a kept world's polling sources as built before push.expected (silent pushes)",
    )
    parser.add_argument("--push-every", type=float, default=20.0, help="seconds between a pushing source's events")
    parser.add_argument("--warmup-s", type=float, default=45.0)
    parser.add_argument(
        "--measure-s",
        default="60",
        help="seconds measured per size after the warm-up: one for every size, or one per size (60,60,1800)",
    )
    parser.add_argument("--idle-s", type=float, default=45.0, help="the idle phase at the end (0: none)")
    parser.add_argument(
        "--outage-s",
        type=float,
        default=0.0,
        help="after the last size: stop the whole service (web, workers, beat) this long while the upstreams keep"
        " pushing (retried until delivered), start it again and measure --after-outage-s (0: no outage)",
    )
    parser.add_argument("--after-outage-s", type=float, default=300.0, help="measured after the outage")
    parser.add_argument("--max-build-s", type=float, default=2400.0, help="bound on building tenants, all sizes")
    parser.add_argument("--root", default=str(HERE), help="the checkout to run (default this one)")
    parser.add_argument("--label", default="after")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the database and the tenants made (in .beastflow/bench/scale-world.jsonl) for --reuse",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="run on the database a --keep run left (same checkout and --sources), without building",
    )
    parser.add_argument(
        "--monitor-processes",
        type=int,
        default=1,
        help="pool processes of the monitor worker (split workers); claimers per tick follow it",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for every process of the service, e.g. --set BEASTFLOW_MONITOR_ACTIVE_S=10 (repeatable)",
    )
    parser.add_argument(
        "--nice-others",
        type=int,
        default=0,
        help="run the web, the non-monitor worker and the simulator at this niceness (the monitor and beat at 0):"
        " what a deployment gets by giving the monitor cores or a priority of its own",
    )
    parser.add_argument(
        "--workers",
        choices=("split", "up", "single"),
        default="split",
        help="split: a monitor worker (1 process) and one for the other queues (2); up: as make up runs them, "
        "the monitor and celery queues (2 processes) apart from the batch queues (2, at --batch-nice); single: one "
        "worker, every queue, 2 processes (make up before 2026-12-07; the only choice for a checkout with one queue)",
    )
    parser.add_argument("--batch-nice", type=int, default=10, help="--workers up: the batch worker's niceness")
    parser.add_argument(
        "--probe-tenants",
        type=int,
        default=6,
        help="tenants created (and deleted after) during each measurement, spread over it: creation under load",
    )
    args = parser.parse_args()

    sizes = [int(s) for s in args.sizes.split(",") if s]
    measure_s = [float(s) for s in args.measure_s.split(",") if s]
    if len(measure_s) == 1:
        measure_s *= len(sizes)
    if len(measure_s) != len(sizes):
        parser.error("--measure-s takes one duration, or one per size")
    weights = [int(w) for w in args.mix.split(",")]
    if len(weights) == 3:
        weights.append(0)
    kinds: list[str] = []
    for kind, weight in zip(("pushing", "polling", "idle", "silent"), weights, strict=True):
        kinds += [kind] * round(args.sources * weight / sum(weights))
    kinds = (kinds + ["idle"] * args.sources)[: args.sources]

    world = ScaleWorld(Path(args.root).resolve())
    world.settings = dict(item.split("=", 1) for item in args.set)
    if args.reuse and WORLD_REDIS_FILE.exists():
        world.redis_prefix = WORLD_REDIS_FILE.read_text().strip()
        # What a stopped run left queued is not this run's load; the rest is what Redis keeps across a restart.
        stale = redis.Redis.from_url(world.redis_url)
        for name in list(stale.scan_iter(match=f"{world.redis_prefix}:celery:*", count=1000)):
            stale.delete(name)
        stale.close()
    elif args.reuse:
        log("reuse: no kept Redis namespace (a world kept before it was kept): everything in Redis starts empty")
    if args.keep:
        WORLD_REDIS_FILE.write_text(world.redis_prefix)
        world.redis_kept = True
    if args.nice_others:
        world.nice = dict.fromkeys(("web", "worker", "simulator"), args.nice_others)
    if args.monitor_processes > 1:  # beat sends that many claimers a tick, one per monitor process
        world.settings.setdefault("BEASTFLOW_MONITOR_CLAIMERS", str(args.monitor_processes))
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    results: list[dict[str, Any]] = []
    pusher: Pusher | None = None
    pushed_seqs: dict[int, int] = {}
    try:
        log(f"database {DATABASE} from {world.root}")
        tenants: list[TenantInfo] = []
        if args.reuse:
            tenants = [TenantInfo(**json.loads(line)) for line in WORLD_FILE.read_text().splitlines() if line]
            log(f"reusing {len(tenants)} tenants of a --keep run")
            # As the product's resume does (engines.source_ops.resume), where the checkout has resumed_at.
            resumed = "UPDATE {schema}.engines_source SET paused = false"
            if has_column(world, tenants[0].schema, "engines_source", "resumed_at"):
                resumed = "UPDATE {schema}.engines_source SET paused = false, resumed_at = now()"
            sql_in_every_schema(world, tenants, resumed)
            # Back in the schedule (a kept world may end with every source paused and out of it), at deadlines
            # spread as in a service that has been running: the product's resume makes them due now, and ten
            # thousand judgements, polls, healing passes and sweeps due at once would come back as waves every
            # few minutes, the idle phase and the baseline each catching a different share of them.
            with world.connect(autocommit=True) as conn:
                conn.execute(
                    "UPDATE scheduling_sourceschedule SET next_eval_at = now() + random() * %(idle)s * interval '1 s',"
                    " next_poll_at = now() + random() * interval '30 s'",
                    {"idle": IDLE_S * (1 - IDLE_SPREAD)},
                )
                conn.execute(
                    "UPDATE scheduling_tenantschedule SET next_healing_at = now() + random() * interval '300 s',"
                    " next_sweep_at = now() + random() * interval '300 s'"
                )
            pushed_seqs.update(streams_repaired(world, tenants))
        else:
            world.create_database()
        world.database_created = not args.keep
        if args.keep and not args.reuse:
            WORLD_FILE.write_text("")
        sim_port = free_port()
        # The polled upstream: our simulator serving its feed (no pushes), from this checkout whatever --root is.
        world.spawn(
            "simulator",
            [sys.executable, str(HERE / "manage.py"), "simulate", "--port", str(sim_port), "--rate", "0"],
            cwd=HERE,
        )
        if args.reuse:
            # The kept sources poll the simulator of the run that made them, gone with it: this one's feed
            # instead (else every poll is refused, and healing's retries of them are what is measured).
            feed = json.dumps(f"http://127.0.0.1:{sim_port}/changes")
            repoint = "UPDATE {schema}.engines_source SET config = jsonb_set(config, '{poll_url}', '%s'::jsonb)"
            sql_in_every_schema(world, tenants, repoint % feed + " WHERE config ? 'poll_url'")
            if not args.silent_polling:
                declared = polling_declared(world, tenants)
                log(f"reuse: {declared} polling sources built before push.expected declared polling-only")
        port = free_port()
        world.spawn(
            "web",
            [sys.executable, "-m", "uvicorn", "beastflow.asgi:application", "--port", str(port), "--no-access-log"],
            BEASTFLOW_DB_POOL_SIZE="20",
        )
        level = os.environ.get("SCALE_WORKER_LOG", "WARNING")
        celery = [sys.executable, "-m", "celery", "-A", "beastflow", "worker", "-l", level]
        if args.workers == "split":
            # As in production, smaller: the monitor on a worker of its own, the rest on another.
            monitor = str(args.monitor_processes)
            world.spawn("worker-monitor", [*celery, "-Q", "monitor", "--concurrency", monitor, "-n", "monitor@%h"],
                        BEASTFLOW_LOG_LEVEL=level)  # fmt: skip
            rest = ",".join(q for q in QUEUES if q != "monitor")
            world.spawn(
                "worker", [*celery, "-Q", rest, "--concurrency", "2", "-n", "rest@%h"], BEASTFLOW_LOG_LEVEL=level
            )
        elif args.workers == "up":
            # beastflow.launch.up_workers, spelled out: --root may be a checkout without it.
            world.nice.setdefault("worker", args.batch_nice)
            world.spawn("worker-monitor", [*celery, "-Q", "celery,monitor", "--concurrency", "2", "-n", "latency@%h"],
                        BEASTFLOW_LOG_LEVEL=level)  # fmt: skip
            batch = "polls,reconcile,healing,callbacks"
            world.spawn(
                "worker", [*celery, "-Q", batch, "--concurrency", "2", "-n", "batch@%h"], BEASTFLOW_LOG_LEVEL=level
            )
        else:
            world.spawn("worker", [*celery, "--concurrency", "2"], BEASTFLOW_LOG_LEVEL=level)
        world.spawn("beat", [sys.executable, "-m", "celery", "-A", "beastflow", "beat", "-l", "WARNING",
                             "--schedule", str(OUT_DIR / f"scale-beat-{os.getpid()}")])  # fmt: skip
        spec = {"kinds": kinds, "specs": source_specs(sim_port, args.push_every)}
        build_deadline = time.monotonic() + args.max_build_s
        for size, seconds in zip(sizes, measure_s, strict=True):
            made: list[TenantInfo] = []
            if len(tenants) < size:
                log(f"building tenants {len(tenants)}..{size - 1}")
            elif not (args.reuse and len(tenants) == size):
                continue
            while True:
                # A chunk at a time, the pusher restarted on every tenant made so far: a tenant's pushing
                # sources are pushed to from its first minutes, as a new customer's would be, instead of
                # all going silent (and degrading together) until the whole size is built.
                chunk = world.build(len(tenants), min(size, len(tenants) + BUILD_CHUNK), spec, build_deadline)
                made += chunk
                tenants += chunk
                if args.keep:
                    with WORLD_FILE.open("a") as kept:
                        kept.writelines(json.dumps(t.__dict__) + "\n" for t in chunk)
                fresh = [(s["id"], t.api_key) for t in chunk for s in t.sources if s["kind"] == "pushing"]
                if pusher is None:
                    pusher = Pusher(port, [], args.push_every, seqs=pushed_seqs).start()
                    fresh = [(s["id"], t.api_key) for t in tenants for s in t.sources if s["kind"] == "pushing"]
                pusher.add(fresh)
                if not chunk or len(tenants) >= size:
                    break
            total = sum(len(t.sources) for t in tenants)
            log(f"{len(tenants)} tenants, {total} sources; warming up {args.warmup_s:.0f}s")
            time.sleep(args.warmup_s)
            creates = [t.create_s for t in made or tenants] or [0.0]
            probe = TenantProbe(world, args.probe_tenants, every_s=seconds / (args.probe_tenants + 1))
            probe.start()
            row = {
                "size": len(tenants),
                "asked": size,
                "create_p50_s": round(statistics.median(creates), 3),
                "create_max_s": round(max(creates), 3),
                "measure": measure(world, tenants, seconds=seconds),
                "pushes_sent": pusher.sent,
                "pushes_retried": pusher.retried,
                "pushes_failed": pusher.failed,
            }
            row["create_under_load_s"] = probe.join()
            results.append(row)
            print_row(args.label, len(tenants), row)
            if len(tenants) < size:
                break  # the build bound: no bigger size
        if args.outage_s > 0 and tenants and pusher is not None:
            results.append({"size": len(tenants), "outage": outage_phase(world, tenants, pusher, port, args)})
        if args.idle_s > 0 and tenants:
            if pusher is not None:
                pusher.stop()
                pusher = None
            sql_in_every_schema(
                world, tenants, "UPDATE {schema}.engines_source SET paused = true WHERE name NOT LIKE 'idle-%'"
            )
            # As the product's pause does (engines.source_ops.pause): the paused sources' judgements and polls
            # are due now, so they leave the schedule during the settling, not one by one in the measured window.
            others = [s["id"] for t in tenants for s in t.sources if s["kind"] != "idle"]
            with world.connect(autocommit=True) as conn:
                conn.execute(
                    "UPDATE scheduling_sourceschedule SET next_eval_at = now(), next_poll_at = now()"
                    " WHERE source_id = ANY(%s)",
                    [others],
                )
            log(f"idle phase: only idle sources run; settling {args.warmup_s:.0f}s")
            time.sleep(args.warmup_s)
            idle_sources = sum(1 for t in tenants for s in t.sources if s["kind"] == "idle")
            idle = measure(world, tenants, seconds=args.idle_s)
            busy = sum(v for k, v in idle["cores"].items() if k.startswith("worker") or k in ("beat", "postgres"))
            idle["idle_sources"] = idle_sources
            idle["cores_per_1000_idle_sources"] = round(1000 * busy / max(1, idle_sources), 4)
            results.append({"size": len(tenants), "idle": idle})
            print(
                f"{args.label:<7} idle phase: {idle_sources} idle sources, worker+beat+postgres "
                f"{busy * 100:.1f}% of a core = {idle['cores_per_1000_idle_sources'] * 100:.2f}% per 1,000 idle sources"
                f" | {idle['judgements'] / args.idle_s:.1f} judgements/s | cores {idle['cores']}",
                flush=True,
            )
            # The same tenants with every source paused: what the tenants and the clock cost by themselves
            # (sweeps, dispatch rounds, heartbeats), so that the idle sources' own cost is the difference.
            sql_in_every_schema(world, tenants, "UPDATE {schema}.engines_source SET paused = true")
            with world.connect(autocommit=True) as conn:  # judged now, to leave the schedule at once
                conn.execute("UPDATE scheduling_sourceschedule SET next_eval_at = now() WHERE next_eval_at IS NOT NULL")
            log(f"baseline: every source paused; settling {args.warmup_s:.0f}s")
            time.sleep(args.warmup_s)
            base = measure(world, tenants, seconds=args.idle_s)
            floor = sum(v for k, v in base["cores"].items() if k.startswith("worker") or k in ("beat", "postgres"))
            own = max(0.0, busy - floor)
            idle["baseline_cores"] = round(floor, 4)
            # What each idle judgement costs, all in (worker, beat, PostgreSQL): the safety net judges an idle
            # source every BEASTFLOW_MONITOR_IDLE_S, so this times that rate is the idle sources' own cost.
            idle["own_ms_per_judgement"] = round(1000 * own * args.idle_s / max(1, idle["judgements"]), 3)
            idle["own_cores_per_1000_idle_sources"] = round(1000 * own / max(1, idle_sources), 4)
            # The window may hold more or fewer judgements than the steady rate (idle sources resumed together
            # come due together); at the steady rate, a thousand idle sources cost:
            idle_every_s = float(world.settings.get("BEASTFLOW_MONITOR_IDLE_S", IDLE_S)) * (1 - IDLE_SPREAD / 2)
            idle["steady_cores_per_1000_idle_sources"] = round(idle["own_ms_per_judgement"] / idle_every_s, 4)
            print(
                f"{args.label:<7} baseline, every source paused: worker+beat+postgres {floor * 100:.1f}% of a core"
                f" ({len(tenants)} tenants) | idle sources' own cost {own * 100:.1f}% = "
                f"{idle['own_cores_per_1000_idle_sources'] * 100:.2f}% per 1,000 in this window; "
                f"{idle['own_ms_per_judgement']} ms per judgement, at the steady rate (one per {idle_every_s:.0f} s) "
                f"{idle['steady_cores_per_1000_idle_sources'] * 100:.2f}% per 1,000 | cores {base['cores']}",
                flush=True,
            )
        out = OUT_DIR / f"scale-{args.label}.json"
        out.write_text(json.dumps(results, indent=2))
        log(f"wrote {out}")
        return 0
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        stop.set()
        if pusher is not None:
            pusher.stop()
        world.close()


if __name__ == "__main__":
    sys.exit(main())
