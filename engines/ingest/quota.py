"""Per-tenant ingest quota: a token bucket in Redis (one round trip per request or per group).

The bucket refills at the tenant's sustained rate up to its burst; a batch
costs one token per event. Redis holds only this soft state: flushed, every
bucket starts full again, which is the safe direction.

`take_each` decides several requests of one tenant in one round trip, in
order, exactly as that many `take` calls would: the fast path's group
commit asks once per group instead of once per request.

Without Redis, ingest goes on (docs/reliability.md): a Redis error opens a
breaker for BREAKER_OPEN_S, and until it closes every decision is taken by
the same bucket held in this process's memory (`LocalBuckets`), refilling at
BEASTFLOW_QUOTA_FALLBACK_SHARE of the tenant's rate and burst (default 1: a
tenant may get up to N times its quota from N web processes while Redis is
away). No request waits on a Redis timeout while the breaker is open; the
first one after it tries Redis again.
"""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aredis
import structlog
from prometheus_client import Counter
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from beastflow import sansio
from beastflow.sansio import Steps

log = structlog.get_logger(__name__)

# After a Redis error the quota is decided in-process for this long before Redis is tried again.
BREAKER_OPEN_S = 5.0
# The quota's own clients fail fast: no retries with backoff (redis-py's default
# turned one refused connection into 3 s), and a short wait for an answer (the
# script takes well under a millisecond; a Redis this slow is as good as down).
CLIENT_TIMEOUT_S = 0.5
# What an asyncio or a sync Redis client raises when Redis is unreachable or too slow.
REDIS_DOWN = (redis.RedisError, OSError, TimeoutError)

QUOTA_LOCAL = Counter(
    "beastflow_ingest_quota_local_total",
    "Quota decisions taken by the per-process fallback limiter because Redis failed",
    ["outcome"],  # allowed | refused
)
QUOTA_REDIS_FAILURES = Counter(
    "beastflow_ingest_quota_redis_failures_total", "Redis errors met by the quota check (each opens the breaker)"
)

# The bucket: several costs taken in turn, {allowed, tokens after} per cost (one cost: one request).
_SCRIPT_EACH = """
local tokens = tonumber(redis.call('HGET', KEYS[1], 't'))
local stamp = tonumber(redis.call('HGET', KEYS[1], 's'))
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if tokens == nil then tokens = burst; stamp = now end
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local out = {}
for i = 4, #ARGV do
    local cost = math.min(tonumber(ARGV[i]), burst)
    local allowed = 0
    if tokens >= cost then tokens = tokens - cost; allowed = 1 end
    out[#out + 1] = allowed
    out[#out + 1] = tostring(tokens)
end
redis.call('HSET', KEYS[1], 't', tokens, 's', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return out
"""


@dataclass(frozen=True)
class QuotaDecision:
    allowed: bool
    retry_after_s: int


def retry_after(tokens: float, cost: int, rate: float, burst: float) -> int:
    """Whole seconds until `cost` tokens are there (a batch above the burst never fits)."""
    needed = min(cost, burst) - tokens
    return max(1, math.ceil(needed / rate)) if rate > 0 else 60


def client(url: str) -> redis.Redis:
    """A client for the quota alone: one attempt, CLIENT_TIMEOUT_S, then the breaker decides."""
    return redis.Redis.from_url(
        url, socket_timeout=CLIENT_TIMEOUT_S, socket_connect_timeout=CLIENT_TIMEOUT_S, retry=Retry(NoBackoff(), 0)
    )


def async_client(url: str) -> aredis.Redis:
    """`client` for an event loop."""
    return aredis.Redis.from_url(
        url, socket_timeout=CLIENT_TIMEOUT_S, socket_connect_timeout=CLIENT_TIMEOUT_S, retry=AsyncRetry(NoBackoff(), 0)
    )


@functools.cache
def fallback_share() -> float:
    """The part of a tenant's rate and burst one process allows while Redis is away (0 < share <= 1).

    Read once per process, not at every decision taken while Redis is away."""
    try:
        share = float(os.environ.get("BEASTFLOW_QUOTA_FALLBACK_SHARE", "1"))
    except ValueError:
        return 1.0
    return min(1.0, share) if share > 0 else 1.0


class LocalBuckets:
    """The Lua scripts' bucket in this process's memory: the quota while Redis cannot be asked.

    Pure bookkeeping (the clock is passed in); one lock, as the fast path's
    commit threads and its event loop both take from it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # tenant -> (tokens, stamp)

    def take_each(
        self, tenant: str, costs: list[int], *, rate: float, burst: float, now: float, share: float = 1.0
    ) -> list[QuotaDecision]:
        rate, burst = rate * share, max(1.0, burst * share)
        decisions = []
        with self._lock:
            tokens, stamp = self._buckets.get(tenant, (burst, now))
            tokens = min(burst, tokens + max(0.0, now - stamp) * rate)
            for cost in costs:
                fits = min(cost, burst)  # a batch above the burst passes on a full bucket, as in Redis
                if tokens >= fits:
                    tokens -= fits
                    decisions.append(QuotaDecision(True, 0))
                else:
                    decisions.append(QuotaDecision(False, retry_after(tokens, cost, rate, burst)))
            self._buckets[tenant] = (tokens, now)
            if len(self._buckets) > 10_000:  # tenants that stopped pushing: a full bucket is the default anyway
                full = [name for name, (left, at) in self._buckets.items() if left >= burst or now - at > 600]
                for name in full:
                    del self._buckets[name]
        for decision in decisions:
            QUOTA_LOCAL.labels("allowed" if decision.allowed else "refused").inc()
        return decisions


class _Breaker:
    """Open after a Redis error: for BREAKER_OPEN_S nobody asks Redis (one flag check per decision)."""

    def __init__(self) -> None:
        self.open_until = 0.0

    def is_open(self) -> bool:
        return time.monotonic() < self.open_until

    def trip(self, exc: BaseException) -> None:
        QUOTA_REDIS_FAILURES.inc()
        if not self.is_open():
            error = f"{type(exc).__name__}: {exc}"[:200]
            log.warning("quota_redis_unavailable", error=error, local_for_s=BREAKER_OPEN_S)
        self.open_until = time.monotonic() + BREAKER_OPEN_S


_local = LocalBuckets()
_breaker = _Breaker()


def _locally(tenant: str, costs: list[int], rate: float, burst: float) -> list[QuotaDecision]:
    return _local.take_each(tenant, costs, rate=rate, burst=burst, now=time.monotonic(), share=fallback_share())


@dataclass(frozen=True)
class _Script:
    """One run of the bucket script: the op `_take_each` yields to its client."""

    keys: list[str]
    args: list[float | int]


def _take_each(prefix: str, tenant: str, costs: list[int], rate: float, burst: float) -> Steps[list[QuotaDecision]]:
    """The decisions for `costs`, for a sync and an async client alike (beastflow/sansio.py).

    The breaker decides whether Redis is asked at all; a Redis error trips it
    and the process's own bucket decides instead.
    """
    if not costs:
        return []
    if _breaker.is_open():
        return _locally(tenant, costs, rate, burst)
    try:
        answer = yield _Script(keys=[f"{prefix}:quota:{tenant}"], args=[rate, burst, time.time(), *costs])
    except REDIS_DOWN as exc:
        _breaker.trip(exc)
        return _locally(tenant, costs, rate, burst)
    return _decisions(costs, answer, rate, burst)


class TokenBucket:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._script_each = client.register_script(_SCRIPT_EACH)
        self._prefix = prefix

    def take(self, tenant: str, cost: int, *, rate: float, burst: float) -> QuotaDecision:
        [decision] = self.take_each(tenant, [cost], rate=rate, burst=burst)
        return decision

    def take_each(self, tenant: str, costs: list[int], *, rate: float, burst: float) -> list[QuotaDecision]:
        """One decision per cost, taken in order from the same bucket, in one round trip."""
        return sansio.run(_take_each(self._prefix, tenant, costs, rate, burst), self._run)

    def _run(self, script: _Script) -> Any:
        return self._script_each(keys=script.keys, args=script.args)


class AsyncTokenBucket:
    """`TokenBucket.take_each` for an event loop (the fast path's small group commits).

    A class of its own only for its client: redis-py's asyncio script object
    is another type, awaited. The decisions are `_take_each`'s, shared.
    """

    def __init__(self, client: aredis.Redis, prefix: str) -> None:
        self._script_each = client.register_script(_SCRIPT_EACH)
        self._prefix = prefix

    async def take_each(self, tenant: str, costs: list[int], *, rate: float, burst: float) -> list[QuotaDecision]:
        return await sansio.arun(_take_each(self._prefix, tenant, costs, rate, burst), self._run)

    async def _run(self, script: _Script) -> Any:
        return await self._script_each(keys=script.keys, args=script.args)


def _decisions(costs: list[int], answer: Any, rate: float, burst: float) -> list[QuotaDecision]:
    decisions = []
    for cost, allowed, tokens in zip(costs, answer[0::2], answer[1::2], strict=True):
        if int(allowed):
            decisions.append(QuotaDecision(True, 0))
        else:
            decisions.append(QuotaDecision(False, retry_after(float(tokens), cost, rate, burst)))
    return decisions
