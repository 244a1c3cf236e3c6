"""Helpers for tests that run real BeastFlow processes: ports, waiting for a web, reading metrics, Redis namespaces.

Shared by the end-to-end tests that start web, worker and beat themselves
(tests/e2e/test_metrics_every_process.py) or the whole launcher
(tests/e2e/test_faults.py, tests/beastflow/test_launcher_restarts.py).
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, list[tuple[dict[str, str], float]]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(url: str, processes: list[subprocess.Popen[bytes]], *, timeout_s: float = 30.0) -> None:
    """Until GET {url}/healthz answers 200; fails if a process exits first or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert all(p.poll() is None for p in processes), "a process of the stack exited at start-up"
        assert time.monotonic() < deadline, "the web server did not come up"
        time.sleep(0.1)


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in reversed(processes):
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
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
