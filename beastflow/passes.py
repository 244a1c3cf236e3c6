"""When each periodic engine last finished a pass, for `/readyz`.

The monitor, polling, reconciliation and callbacks engines run as beat
ticks fanned out to tenants. An engine is healthy while some pass of it has
finished recently: a stale mark means beat stopped, the workers are stuck
behind a backlog, or the engine's task keeps failing. The marks are global
(not per tenant) because readiness is a property of the platform.
"""

from __future__ import annotations

import time

from beastflow.health import ComponentHealth, FunctionComponent, register
from beastflow.redis_client import get_redis, key

MARK_TTL_S = 3600


def _mark_key(engine: str) -> str:
    return key("pass", engine)


def pass_mark(engine: str) -> None:
    """Record that one pass of `engine` finished now."""
    get_redis().set(_mark_key(engine), repr(time.time()), ex=MARK_TTL_S)


def pass_age_s(engine: str) -> float | None:
    raw = get_redis().get(_mark_key(engine))
    return None if raw is None else max(0.0, time.time() - float(raw))


def register_pass_component(engine: str, *, stale_after_s: float) -> None:
    """A non-critical `/readyz` component: ok while a pass finished within `stale_after_s`.

    Non-critical because the API keeps accepting and serving data while an
    engine is behind; the operator still sees which part stopped.
    """

    def probe() -> ComponentHealth:
        age = pass_age_s(engine)
        details: dict[str, object] = {
            "last_pass_age_s": None if age is None else round(age, 1),
            "stale_after_s": stale_after_s,
        }
        return ComponentHealth(ok=age is not None and age <= stale_after_s, critical=False, details=details)

    register(FunctionComponent(name=engine, probe=probe))
