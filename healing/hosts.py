"""Which upstream hosts are failing, across every source and tenant.

Failures live in tenant schemas, so no tenant's query can see that the same
host fails for another tenant. Each failure with a host is also noted here,
in Redis (a sorted set per host: member `<schema>:<source>:<kind>`, score
the time): soft state, rebuilt by the next failures after a flush, which is
all that "is this host down for everyone right now?" needs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis
import structlog

from beastflow.redis_client import get_redis, key

log = structlog.get_logger(__name__)

WINDOW_S = 300.0
# Failure kinds that say the host itself is down (not a refusal of this caller).
HOST_DOWN_KINDS = frozenset({"upstream_unavailable", "upstream_timeout"})


def _key(host: str) -> str:
    return key("healing", "host", host)


def host_failure_note(*, host: str, schema: str, source_id: int | None, kind: str, now: float | None = None) -> None:
    now = time.time() if now is None else now
    name = _key(host)
    try:
        pipe = get_redis().pipeline()
        pipe.zadd(name, {f"{schema}:{source_id}:{kind}": now})
        pipe.zremrangebyscore(name, 0, now - WINDOW_S)
        pipe.expire(name, int(WINDOW_S * 2))
        pipe.execute()
    except redis.RedisError as exc:  # context is a nicety; the failure itself is recorded in PostgreSQL
        log.warning("host_failure_note_failed", host=host, error=str(exc))


@dataclass(frozen=True)
class HostFailures:
    sources: int  # distinct sources (across tenants) whose calls to the host say it is down
    tenants: int
    kinds: tuple[str, ...]  # every kind of failure seen on the host in the window

    @property
    def down(self) -> bool:
        return bool(HOST_DOWN_KINDS & set(self.kinds))


def host_failures(host: str, *, now: float | None = None, window_s: float = WINDOW_S) -> HostFailures:
    now = time.time() if now is None else now
    try:
        members = get_redis().zrangebyscore(_key(host), now - window_s, "+inf")
    except redis.RedisError:
        return HostFailures(0, 0, ())
    down_sources: set[tuple[str, str]] = set()
    kinds: set[str] = set()
    for raw in members:
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        schema, source, kind = text.rsplit(":", 2)
        kinds.add(kind)
        if kind in HOST_DOWN_KINDS:
            down_sources.add((schema, source))
    return HostFailures(len(down_sources), len({schema for schema, _ in down_sources}), tuple(sorted(kinds)))
