"""The real `make up` launcher as a benchmark's subject, and a steady pusher that remembers every answer.

Shared by bench/faults.py and bench/soak.py. `Launched` runs
`python -m beastflow.launch up` (bootstrap, then web + worker + beat under
its supervisor) on a database and a Redis prefix of its own, with
BEASTFLOW_DEMO=0, and finds the processes it supervises. `Pusher` sends
batches of events at a fixed rate from a thread of its own and keeps, per
request, when it was sent and answered, the status (or the transport
error) and the event ids, so a run can count what was acknowledged and
check it against the database afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil
import psycopg
import redis
from psycopg import sql

from bench._client import Connection, HttpError, Request
from bench._world import free_port, log, stop_group, with_database

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 240.0  # bootstrap migrates a fresh database first
REQUEST_TIMEOUT_S = 30.0


def answers(url: str, timeout_s: float = 2.0) -> int | None:
    """The HTTP status of GET `url`, None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (loopback)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return None


@dataclass
class Launched:
    """`make up` on its own database, Redis prefix, port, state and metrics folders."""

    workdir: Path
    admin_database_url: str
    redis_url: str
    database: str = "beastflow_faults"
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    prefix: str = field(default_factory=lambda: f"bffaults{uuid.uuid4().hex[:6]}")
    proc: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None
    api_key: str = ""
    schema: str = ""

    @property
    def database_url(self) -> str:
        return with_database(self.admin_database_url, self.database)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_dir(self) -> Path:
        return self.workdir / "metrics"

    @property
    def log_path(self) -> Path:
        return self.workdir / "launcher.log"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "BEASTFLOW_REDIS_PREFIX": self.prefix,
            "BEASTFLOW_PORT": str(self.port),
            "BEASTFLOW_DEMO": "0",
            "BEASTFLOW_STATE_DIR": str(self.workdir / "state"),
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
            "BEASTFLOW_LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "beastflow.settings",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }

    def start(self) -> None:
        """Fresh database, then the launcher; returns once /healthz answers and the demo key is there."""
        self.metrics_dir.mkdir(parents=True, exist_ok=True)  # bootstrap writes there too
        self._drop_database()
        with psycopg.connect(with_database(self.admin_database_url, "postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        self.log_file = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "beastflow.launch", "up"],
            cwd=ROOT,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            process_group=0,  # our Ctrl-C is ours; we stop the launcher with SIGTERM
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while answers(f"{self.url}/healthz") != 200:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the launcher exited with {self.proc.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no /healthz after {START_TIMEOUT_S:.0f} s; see {self.log_path}")
            time.sleep(0.25)
        self.api_key = (self.workdir / "state" / "demo_api_key").read_text().strip()
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            row = conn.execute("SELECT schema_name FROM tenants_tenant WHERE slug = 'demo'").fetchone()
            assert row is not None, "bootstrap made no demo tenant"
            self.schema = str(row[0])
            # The runs measure faults, not the tenant's quota.
            conn.execute(
                "UPDATE tenants_tenant SET ingest_rate_per_s = 1000000000, ingest_burst = 2000000000"
                " WHERE slug = 'demo'"
            )

    def create_source(self, name: str) -> int:
        request = urllib.request.Request(  # noqa: S310 (loopback)
            f"{self.url}/api/v1/sources",
            method="POST",
            data=json.dumps(
                {
                    "name": name,
                    "connector": "http",
                    # Never polled while pushed to steadily; the address is only a placeholder.
                    "config": {"poll_url": "http://127.0.0.1:9/changes", "expected_interval_s": 1.0},
                }
            ).encode(),
            headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback)
            return int(json.loads(response.read())["id"])

    def processes(self) -> dict[str, psutil.Process]:
        """The supervised processes by role: web, worker, batch, beat (their main process, not the pool's).

        `batch`: `make up`'s second worker (node batch@, the batch queues); `worker` is the one the probes ping.
        """
        assert self.proc is not None
        found: dict[str, psutil.Process] = {}
        for child in psutil.Process(self.proc.pid).children():
            try:
                argv = child.cmdline()
                if child.status() == psutil.STATUS_ZOMBIE:
                    continue
            except psutil.NoSuchProcess:
                continue
            if "uvicorn" in argv:
                found["web"] = child
            elif "worker" in argv and "celery" in argv:
                found["batch" if any(arg.startswith("batch@") for arg in argv) else "worker"] = child
            elif "beat" in argv and "celery" in argv:
                found["beat"] = child
        return found

    def pool(self, role: str) -> list[psutil.Process]:
        """A role's main process and its children (a worker's pool processes)."""
        main = self.processes().get(role)
        if main is None:
            return []
        with contextlib.suppress(psutil.NoSuchProcess):
            return [main, *main.children(recursive=True)]
        return []

    def stored(self, source_id: int, ids: list[str]) -> set[str]:
        """Which of `ids` the source's event table holds."""
        found: set[str] = set()
        with psycopg.connect(self.database_url) as conn:
            for start in range(0, len(ids), 5000):
                rows = conn.execute(
                    sql.SQL("SELECT event_id FROM {}.engines_event WHERE source_id = %s AND event_id = ANY(%s)").format(
                        sql.Identifier(self.schema)
                    ),
                    [source_id, ids[start : start + 5000]],
                ).fetchall()
                found.update(str(row[0]) for row in rows)
        return found

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, socket_timeout=2, socket_connect_timeout=2)

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc, timeout_s=40, leader_only=True)
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None

    def close(self) -> None:
        """Stop the launcher, drop the database, delete the prefix's keys."""
        self.stop()
        try:
            self._drop_database()
        except psycopg.Error as exc:
            log(f"dropping {self.database}: {exc!r}")
        try:
            client = self.redis()
            keys = list(client.scan_iter(match=f"{self.prefix}:*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
            client.close()
        except redis.RedisError as exc:
            log(f"cleaning Redis keys {self.prefix}:*: {exc!r}")

    def _drop_database(self) -> None:
        with psycopg.connect(with_database(self.admin_database_url, "postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.database)))


# Steady ingest ------------------------------------------------------------


@dataclass
class Answer:
    sent: float  # time.monotonic()
    answered: float
    status: int | None  # None: no HTTP answer
    problem: str  # "" for an HTTP answer, else the transport error's kind
    ids: tuple[str, ...]
    label: str = "steady"

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def outcome(self) -> str:
        return str(self.status) if self.status is not None else self.problem


def events_body(ids: list[str], **data: Any) -> bytes:
    return json.dumps(
        {
            "events": [
                {"id": event_id, "type": "upsert", "key": f"k-{event_id}", "version": 1, "data": {"n": 1, **data}}
                for event_id in ids
            ]
        }
    ).encode()


async def exchange(connection: Connection, request: Request, label: str, ids: tuple[str, ...]) -> Answer:
    """One request on `connection`, never raising: a transport error or a timeout is an Answer too."""
    sent = time.monotonic()
    try:
        response = await asyncio.wait_for(connection.send(request), REQUEST_TIMEOUT_S)
        return Answer(sent, time.monotonic(), response.status, "", ids, label)
    except TimeoutError:
        await connection.close()
        return Answer(sent, time.monotonic(), None, "timeout", ids, label)
    except ConnectionRefusedError:
        await connection.close()
        return Answer(sent, time.monotonic(), None, "refused", ids, label)
    except (HttpError, OSError) as exc:
        await connection.close()
        kind = "reset" if "lost" in str(exc) or isinstance(exc, ConnectionError) else type(exc).__name__
        return Answer(sent, time.monotonic(), None, kind, ids, label)


class Pusher:
    """`rate` events/s in batches of `batch`, paced (open loop), from a thread with its own event loop."""

    def __init__(self, port: int, api_key: str, source_id: int, *, rate: float, batch: int, pool: int = 16) -> None:
        self.port, self.source_id = port, source_id
        self.rate, self.batch, self.pool = rate, batch, pool
        self.headers = (("Authorization", f"Bearer {api_key}"), ("Content-Type", "application/json"))
        self.path = f"/api/v1/sources/{source_id}/events"
        self.answers: list[Answer] = []
        self.run_id = uuid.uuid4().hex[:6]
        self._next = 0
        self._ids_lock = threading.Lock()  # the bad-input scenario takes ids from another thread
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="pusher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=REQUEST_TIMEOUT_S + 10)

    def new_ids(self, count: int) -> list[str]:
        with self._ids_lock:
            first, self._next = self._next, self._next + count
        return [f"{self.run_id}-{n}" for n in range(first, first + count)]

    def request(self, ids: list[str]) -> Request:
        return Request("POST", self.path, events_body(ids), self.headers, events=len(ids))

    async def _run(self) -> None:
        free: asyncio.Queue[Connection] = asyncio.Queue()
        for _ in range(self.pool):
            free.put_nowait(Connection(self.port))
        interval = self.batch / self.rate
        started = time.monotonic()
        tasks: set[asyncio.Task[None]] = set()

        async def one(n: int) -> None:
            ids = self.new_ids(self.batch)
            connection = await free.get()
            try:
                self.answers.append(await exchange(connection, self.request(ids), "steady", tuple(ids)))
            finally:
                free.put_nowait(connection)

        n = 0
        while not self._stop.is_set():
            delay = started + n * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        if tasks:
            await asyncio.gather(*tasks)
        while not free.empty():
            await free.get_nowait().close()
