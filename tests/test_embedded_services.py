"""A fresh machine with no PostgreSQL and no Redis still runs BeastFlow.

The test runs this file as a script inside a new network namespace, where
nothing answers on 127.0.0.1:5432 or :6379, with DATABASE_URL / REDIS_URL
unset and a temporary state dir. There the launcher must start the embedded
servers; each function in STEPS then checks one thing with the resolved
environment. To check more in that world (migrations, /readyz), add a step.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import redis

from tests.stack import free_port

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE_TIMEOUT_S = 60


def test_launcher_starts_embedded_postgres_and_redis_when_nothing_answers(tmp_path: Path) -> None:
    # given
    reason = _why_no_namespace()
    if reason is not None:
        pytest.skip(reason)
    state_dir = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {"BEASTFLOW_STATE_DIR": str(state_dir), "PYTHONPATH": str(ROOT)}

    # when
    try:
        result = subprocess.run(
            ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", sys.executable, __file__],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=NAMESPACE_TIMEOUT_S,
        )
    finally:
        # Backstop if the script died before its own stop: stopping works by
        # pid, from outside the namespace too.
        _launch("stop", env=env)

    # then
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "started embedded PostgreSQL" in result.stderr
    assert "started embedded Redis" in result.stderr
    assert "using embedded PostgreSQL" in result.stderr  # the second run reused it


def _why_no_namespace() -> str | None:
    """Why this machine cannot run the test, or None if it can."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed: cannot isolate from the local servers"
    if shutil.which("ip") is None:
        return "ip (iproute2) is not installed: cannot bring up loopback in a network namespace"
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"creating a network namespace is not permitted here: {probe.stderr.strip()}"
    return None


def _launch(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "beastflow.launch", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=NAMESPACE_TIMEOUT_S,
    )


# In the namespace ---------------------------------------------------------

Env = dict[str, str]


def nothing_answers_on_default_ports(env: Env) -> None:
    for port in (5432, 6379):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()


def postgres_answers(env: Env) -> None:
    with psycopg.connect(env["DATABASE_URL"], connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.info.dbname == "beastflow"
        # The socket lives in the state dir: this is the embedded server.
        assert conn.info.host.startswith(env["BEASTFLOW_STATE_DIR"])


def redis_answers(env: Env) -> None:
    client = redis.Redis.from_url(env["REDIS_URL"], socket_connect_timeout=5)
    assert client.ping() is True
    assert client.connection_pool.connection_kwargs["port"] != 6379


def service_comes_up_ready(env: Env) -> None:
    """Migrate, then serve: /readyz must answer 200 with every component ok."""
    import httpx

    boot = subprocess.run(
        [sys.executable, "manage.py", "bootstrap", "--no-demo", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=NAMESPACE_TIMEOUT_S,
    )
    assert boot.returncode == 0, boot.stderr
    port = free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "beastflow.asgi:application", "--port", str(port), "--no-access-log"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        response = None
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert response is not None, "the web process never answered"
        body = response.json()
        assert response.status_code == 200, body
        assert all(body["components"][name]["ok"] for name in ("database", "redis", "broker", "migrations"))
    finally:
        web.terminate()
        web.wait(timeout=10)


# Run in order in the namespace; each gets the exported environment.
STEPS: list[Callable[[Env], None]] = [
    nothing_answers_on_default_ports,
    postgres_answers,
    redis_answers,
    service_comes_up_ready,
]


def resolve_twice(env: Env) -> Env:
    """`launch services` twice: the first starts the servers, the second reuses them."""
    first, second = _launch("services", env=env), _launch("services", env=env)
    for run in (first, second):
        sys.stderr.write(run.stderr)
        assert run.returncode == 0, run.stderr
    assert first.stdout == second.stdout, "the second run did not reuse the servers"
    exported = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in first.stdout.splitlines())
    return {**env, **exported}


def main() -> int:
    env = dict(os.environ)
    try:
        env = resolve_twice(env)
        for step in STEPS:
            started = time.monotonic()
            step(env)
            print(f"ok {step.__name__} ({time.monotonic() - started:.2f} s)", flush=True)
    finally:
        stopped = _launch("stop", env=env)
        sys.stderr.write(stopped.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
