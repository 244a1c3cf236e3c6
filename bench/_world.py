"""The benchmark's own world: a fresh database, tenants, sources, server processes.

Everything made here is undone by `World.close()`: servers are killed by
process group, the database is dropped, the Redis keys under the run's
prefix are deleted. bench/ingest.py calls it in a `finally`, and turns
SIGTERM into the same path as Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / ".beastflow" / "bench"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/beastflow"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
BENCH_DATABASE = "beastflow_bench"
SERVER_START_TIMEOUT_S = 60.0


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def stop_group(proc: subprocess.Popen[Any], *, timeout_s: float, leader_only: bool = False) -> None:
    """Stop a child started as the leader of its own process group: SIGTERM, then SIGKILL after `timeout_s`.

    SIGTERM goes to the whole group (a server's `--workers 2` children must not
    outlive us), or with `leader_only` to the leader alone (a launcher that stops
    its children in its own order); SIGKILL always goes to the group.
    """
    if proc.poll() is not None:
        return
    if leader_only:
        proc.send_signal(signal.SIGTERM)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Tenant:
    slug: str
    schema: str
    api_key: str
    sources: dict[str, Source] = field(default_factory=dict)


@dataclass(frozen=True)
class Source:
    id: int
    secret: str


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def stop(self) -> None:
        stop_group(self.proc, timeout_s=10)
        # Children of a multi-worker server may still be winding down.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log_file.close()


class World:
    """A bench database of its own (`database`, dropped and made anew) and the servers of the checkout at `root`."""

    def __init__(self, *, database: str = BENCH_DATABASE, root: Path = ROOT) -> None:
        self.database = database
        self.root = root
        self.admin_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
        self.redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
        self.database_url = with_database(self.admin_url, database)
        self.redis_prefix = f"bfbench{os.getpid()}"
        self.servers: list[Server] = []
        self.tenants: list[Tenant] = []
        self.database_created = False
        self.redis_kept = False  # the keys under redis_prefix outlive the run (a kept world)
        OUT_DIR.mkdir(parents=True, exist_ok=True)

    # Environment ----------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "BEASTFLOW_REDIS_PREFIX": self.redis_prefix,
            "BEASTFLOW_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.database_url, **kwargs)

    def _maintenance_url(self) -> str:
        return with_database(self.admin_url, "postgres")

    # Database and tenants -------------------------------------------------

    def create_database(self) -> None:
        with psycopg.connect(self._maintenance_url(), autocommit=True) as conn:
            # A run killed with SIGKILL leaves its database behind: start clean.
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.database)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        self.database_created = True
        self._manage("migrate_schemas", "-v0")

    def create_tenant(self, slug: str) -> Tenant:
        out = self._manage("tenant", "create", slug, "--json")
        data = json.loads(out.strip().splitlines()[-1])
        tenant = Tenant(slug=data["slug"], schema=data["schema"], api_key=data["api_key"])
        self.tenants.append(tenant)
        return tenant

    def lift_quotas(self) -> None:
        """The bench measures capacity, not the quota: lift it for its tenants."""
        with self.connect(autocommit=True) as conn:
            conn.execute(
                "UPDATE tenants_tenant SET ingest_rate_per_s = 1000000000, ingest_burst = 2000000000"
                " WHERE slug = ANY(%s)",
                [[t.slug for t in self.tenants]],
            )

    def _manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, str(self.root / "manage.py"), *args],
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    # Servers --------------------------------------------------------------

    def start_server(
        self, name: str, app: str, *, workers: int = 1, settings: str | None = None, health: str = "/healthz"
    ) -> Server:
        port = free_port()
        argv = [
            sys.executable, "-m", "uvicorn", app,
            "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
        ]  # fmt: skip
        if workers > 1:
            argv += ["--workers", str(workers)]
        extra = {"DJANGO_SETTINGS_MODULE": settings} if settings else {}
        log_path = OUT_DIR / f"server-{name}.log"
        log_file = log_path.open("wb")
        proc = subprocess.Popen(
            argv,
            cwd=self.root,
            env=self.env(**extra),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            process_group=0,  # Ctrl-C reaches only us; we stop the group
        )
        server = Server(name, port, proc, log_path, log_file)
        self.servers.append(server)
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server {name} exited with {proc.returncode}; see {log_path}")
            if _answers(port, health):
                return server
            time.sleep(0.1)
        raise RuntimeError(f"server {name} did not answer {health} in {SERVER_START_TIMEOUT_S:.0f} s; see {log_path}")

    def stop_server(self, server: Server) -> None:
        server.stop()
        self.servers.remove(server)

    # API setup (plain urllib: a handful of calls) -------------------------

    def create_source(self, server: Server, tenant: Tenant, name: str, *, push: dict[str, Any] | None = None) -> Source:
        body: dict[str, Any] = {
            "name": name,
            "connector": "http",
            # Never polled during the run: ingest is push only here.
            "config": {"poll_url": "http://127.0.0.1:9/changes", "expected_interval_s": 1.0},
        }
        if push is not None:  # an upstream's own webhooks (docs/push.md)
            body["push"] = push
        answer = api(server.port, "POST", "/api/v1/sources", tenant.api_key, body)
        source = Source(id=int(answer["id"]), secret=str(answer["webhook_secret"]))
        tenant.sources[name] = source
        return source

    # Cleanup --------------------------------------------------------------

    def close(self) -> None:
        for server in list(self.servers):
            try:
                self.stop_server(server)
            except Exception as exc:  # keep cleaning up
                log(f"stopping {server.name}: {exc!r}")
        if self.database_created:
            try:
                with psycopg.connect(self._maintenance_url(), autocommit=True) as conn:
                    conn.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.database))
                    )
                self.database_created = False
            except psycopg.Error as exc:
                log(f"dropping {self.database}: {exc!r}")
        if self.redis_kept:
            return
        try:
            client = redis.Redis.from_url(self.redis_url)
            keys = list(client.scan_iter(match=f"{self.redis_prefix}:*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
            client.close()
        except redis.RedisError as exc:
            log(f"cleaning Redis keys {self.redis_prefix}:*: {exc!r}")


class ConnectionsMeter:
    """Peak PostgreSQL connections to the bench database while a phase runs (sampled every 0.2 s)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="bench-connections", daemon=True)

    def __enter__(self) -> ConnectionsMeter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _sample(self) -> None:
        try:
            with psycopg.connect(self.world._maintenance_url(), autocommit=True) as conn:
                while not self._stop.is_set():
                    row = conn.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [self.world.database]
                    ).fetchone()
                    self.peak = max(self.peak, int(row[0]) if row else 0)
                    self._stop.wait(0.2)
        except psycopg.Error as exc:
            log(f"sampling connections: {exc!r}")


def _answers(port: int, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as response:
            return int(response.status) < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (urllib.error.URLError, OSError):
        return False


def api(port: int, method: str, path: str, api_key: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback)
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from exc
