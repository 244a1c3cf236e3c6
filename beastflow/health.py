"""Component health: each part of the system says whether it can do its job.

A component is anything with a `name` and a `check()` returning a
ComponentHealth. `/readyz` runs every registered component; the database,
Redis, the broker and migrations register here, and every engine registers
its own when it lands (in its AppConfig.ready()).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis
import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ComponentHealth:
    ok: bool
    details: dict[str, Any] = field(default_factory=dict)
    # A degraded component is reported but does not fail readiness (for
    # example an engine that is behind but still working).
    critical: bool = True


class Component(Protocol):
    @property
    def name(self) -> str: ...

    def check(self) -> ComponentHealth: ...


@dataclass(frozen=True)
class FunctionComponent:
    name: str
    probe: Callable[[], ComponentHealth]

    def check(self) -> ComponentHealth:
        return self.probe()


_registry: dict[str, Component] = {}
CHECK_TIMEOUT_S = 3.0


def register(component: Component) -> Component:
    _registry[component.name] = component
    return component


def component(name: str) -> Callable[[Callable[[], ComponentHealth]], Callable[[], ComponentHealth]]:
    """Decorator: register a function as a health component."""

    def wrap(probe: Callable[[], ComponentHealth]) -> Callable[[], ComponentHealth]:
        register(FunctionComponent(name=name, probe=probe))
        return probe

    return wrap


def registered() -> list[str]:
    return sorted(_registry)


def _run(item: Component) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = item.check()
    except redis.RedisError as exc:
        # A component that reads its state from Redis cannot tell while Redis is
        # down; the `redis` component reports the cause, and Redis is not
        # critical (health_checks.py), so neither is this.
        result = ComponentHealth(ok=False, critical=False, details={"error": f"{type(exc).__name__}: {exc}"})
    except Exception as exc:  # a failing probe is a failing component, never a 500
        result = ComponentHealth(ok=False, details={"error": f"{type(exc).__name__}: {exc}"})
    return {
        "ok": result.ok,
        "critical": result.critical,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        **result.details,
    }


def readiness(only: Collection[str] | None = None) -> tuple[bool, dict[str, dict[str, Any]]]:
    """Run every component, or the ones named in `only` (in parallel, each bounded in time).

    `only` serves a probe that asks about one process, e.g. a Kubernetes
    readiness probe on a web pod (docs/deploy.md): whether this pod can serve
    (database, Redis, migrations), not whether the workers keep up.
    """
    components = {name: item for name, item in _registry.items() if only is None or name in only}
    report: dict[str, dict[str, Any]] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, len(components)))
    try:
        futures = {name: pool.submit(_run_with_db_cleanup, item) for name, item in components.items()}
        deadline = time.monotonic() + CHECK_TIMEOUT_S
        for name, future in futures.items():
            try:
                report[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                report[name] = {"ok": False, "critical": True, "error": f"no answer within {CHECK_TIMEOUT_S}s"}
    finally:
        # Not waiting for a probe that hangs (a database pool waiting for a connection
        # that cannot be made): the answer is due now; the thread ends on its own.
        pool.shutdown(wait=False, cancel_futures=True)
    ready = all(entry["ok"] for entry in report.values() if entry["critical"])
    if not ready:
        failing = [name for name, entry in report.items() if not entry["ok"] and entry["critical"]]
        log.warning("not_ready", failing=failing)
    return ready, report


def _run_with_db_cleanup(item: Component) -> dict[str, Any]:
    from django.db import connections

    try:
        return _run(item)
    finally:
        connections.close_all()  # these threads are short-lived: leave no connection behind
