"""Where the CPU went during a phase: client (this process), server, PostgreSQL, Redis.

On a 2-core machine the load generator, the server and PostgreSQL share two
cores, so a throughput figure means little without knowing who used them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import psutil

GROUPS = ("client", "server", "postgres", "redis", "other")


def _classify(proc: psutil.Process, server_pids: set[int]) -> str:
    if proc.pid == os.getpid():
        return "client"
    if proc.pid in server_pids:
        return "server"
    name = proc.name()
    if name.startswith("postgres") or name.startswith("postmaster"):
        return "postgres"
    if name.startswith("redis"):
        return "redis"
    return "other"


def _snapshot(server_pids: set[int]) -> dict[int, tuple[str, float]]:
    taken: dict[int, tuple[str, float]] = {}
    for proc in psutil.process_iter():
        try:
            times = proc.cpu_times()
            taken[proc.pid] = (_classify(proc, server_pids), times.user + times.system)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return taken


def _server_pids(root_pid: int | None) -> set[int]:
    if root_pid is None:
        return set()
    try:
        root = psutil.Process(root_pid)
        return {root_pid, *(child.pid for child in root.children(recursive=True))}
    except psutil.NoSuchProcess:
        return set()


@dataclass
class CpuUse:
    """Cores used on average per group (1.0 = one core busy all the time)."""

    wall_s: float
    cores: dict[str, float]
    server_processes: list[float]  # cores per server process, busiest first

    def as_dict(self) -> dict[str, Any]:
        figures: dict[str, Any] = {name: round(value, 2) for name, value in self.cores.items()}
        if len(self.server_processes) > 1:
            figures["server_processes"] = [round(value, 2) for value in self.server_processes]
        return figures

    def describe(self) -> str:
        busy = sum(self.cores.values())
        parts = []
        for name in GROUPS:
            if self.cores.get(name, 0) < 0.005:
                continue
            part = f"{name} {self.cores[name] * 100:.0f}%"
            if name == "server" and len(self.server_processes) > 1:
                part += " (" + " + ".join(f"{value * 100:.0f}%" for value in self.server_processes) + ")"
            parts.append(part)
        return f"cpu (% of one core): {', '.join(parts)}; total {busy * 100:.0f}% of {psutil.cpu_count() * 100}%"


class CpuMeter:
    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.start = 0.0
        self.before: dict[int, tuple[str, float]] = {}

    def __enter__(self) -> CpuMeter:
        self.before = _snapshot(_server_pids(self.server_pid))
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.result = self.stop()

    def stop(self) -> CpuUse:
        wall = time.perf_counter() - self.start
        after = _snapshot(_server_pids(self.server_pid))
        used = dict.fromkeys(GROUPS, 0.0)
        per_server: list[float] = []
        for pid, (group, total) in after.items():
            # A process born during the phase (a new database backend) counts whole.
            _, earlier = self.before.get(pid, (group, 0.0))
            used[group] += max(0.0, total - earlier)
            if group == "server":
                per_server.append(max(0.0, total - earlier) / wall)
        return CpuUse(
            wall_s=wall,
            cores={name: value / wall for name, value in used.items()},
            server_processes=sorted((v for v in per_server if v >= 0.005), reverse=True),
        )
