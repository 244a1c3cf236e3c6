"""Healing's `/readyz` components (non-critical): its tick's last pass, and the failure queue's backlog age."""

from __future__ import annotations

import time

from beastflow.health import ComponentHealth, FunctionComponent, register
from beastflow.passes import register_pass_component
from beastflow.redis_client import get_redis, key

# The tick runs every 2 s on beat.
register_pass_component("healing", stale_after_s=60.0)

BACKLOG_STALE_S = 300.0
BACKLOG_TTL_S = 600


def backlog_key() -> str:
    return key("healing", "backlog")


def backlog_note(schema: str, age_s: float | None) -> None:
    """Each tenant's tick says how old its oldest unanalysed failure is (0: none)."""
    client = get_redis()
    client.hset(backlog_key(), schema, f"{age_s or 0.0:.1f}:{time.time():.0f}")
    client.expire(backlog_key(), BACKLOG_TTL_S)


def _probe() -> ComponentHealth:
    now = time.time()
    oldest = 0.0
    for raw in get_redis().hvals(backlog_key()):
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        age, at = (float(part) for part in text.split(":"))
        if now - at < BACKLOG_TTL_S:
            oldest = max(oldest, age)
    return ComponentHealth(
        ok=oldest <= BACKLOG_STALE_S,
        critical=False,
        details={"oldest_unanalysed_failure_s": round(oldest, 1), "stale_after_s": BACKLOG_STALE_S},
    )


register(FunctionComponent(name="healing_queue", probe=_probe))
