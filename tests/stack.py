"""Helpers for tests that run real processes: free ports, waiting on a condition or a server, metrics, Redis keys.

Shared by the end-to-end tests that start web, worker and beat themselves
(tests/e2e/test_metrics_every_process.py) or the whole launcher
(tests/e2e/test_faults.py, tests/beastflow/test_launcher_restarts.py), and by
the other helpers that start a server (tests/conftest.py's `web_server`,
tests/reliability/support.py, tests/prometheus_server.py).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, list[tuple[dict[str, str], float]]]
ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], T], timeout_s: float, what: str, every_s: float = 0.05) -> T:
    """Poll `condition` until it returns something truthy; that value, or AssertionError after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(every_s)


def wait_healthy(
    url: str, processes: list[subprocess.Popen[bytes]], *, timeout_s: float = 30.0, path: str = "/healthz"
) -> None:
    """Until GET {url}{path} answers 200; fails if a process exits first or the deadline passes."""

    def answers() -> bool:
        assert all(p.poll() is None for p in processes), f"a process serving {url} exited at start-up"
        try:
            return httpx.get(f"{url}{path}", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(answers, timeout_s, f"{url}{path} answers 200", every_s=0.1)


def stop(processes: list[subprocess.Popen[bytes]], *, timeout_s: float = 15.0) -> None:
    for process in reversed(processes):
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()


def forget_namespace(prefix: str) -> None:
    """The Redis keys of a namespace of our own (the session's own are removed by conftest)."""
    from beastflow.redis_client import get_redis

    client = get_redis()
    for name in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(name)


def scrape(url: str) -> Samples:
    """GET {url}/metrics, as sample name -> [(labels, value)]."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    return sum(
        value
        for found, value in samples.get(name, [])
        if all(found.get(label) == wanted for label, wanted in labels.items())
    )


def read_multiprocess_counters(folder: Path) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """What a PROMETHEUS_MULTIPROC_DIR holds, summed over its processes' files: name -> labels -> value."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))  # type: ignore[no-untyped-call]
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in registry.collect():
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


@contextmanager
def run_stack(tmp_path: Path, *, env: dict[str, str], name: str = "obs") -> Iterator[str]:
    """web + worker + beat sharing one metrics folder, as `make up` runs them; yields the web's URL.

    `env` is the processes' environment (tests.conftest.subprocess_env() for the
    test database). They get a Redis namespace of their own, so no other test's
    worker takes their tasks, and a quick monitor clock (beat every 0.5 s).
    """
    folder = tmp_path / "metrics"
    folder.mkdir()
    port = free_port()
    prefix = f"bf{name}{uuid.uuid4().hex[:8]}"
    env = env | {
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
        "BEASTFLOW_REDIS_PREFIX": prefix,
        "BEASTFLOW_MONITOR_TICK_S": "0.5",
        "BEASTFLOW_MONITOR_ACTIVE_S": "1",
    }
    python = sys.executable
    worker = ["worker", "--concurrency", "2", "-l", "WARNING", "-n", f"{name}@%h"]
    commands = [
        [python, "-m", "uvicorn", "beastflow.asgi:application", "--port", str(port), "--no-access-log"],
        [python, "-m", "celery", "-A", "beastflow", *worker],
        [python, "-m", "celery", "-A", "beastflow", "beat", "-l", "WARNING", "--schedule", str(tmp_path / "beat")],
    ]
    processes = [subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL) for argv in commands]
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, processes)
        yield url
    finally:
        stop(processes)
        forget_namespace(prefix)
