"""Per-tenant ingest quota: a token bucket in Redis (one round trip per request or per group).

The bucket refills at the tenant's sustained rate up to its burst; a batch
costs one token per event. Redis holds only this soft state: flushed, every
bucket starts full again, which is the safe direction.

`take_each` decides several requests of one tenant in one round trip, in
order, exactly as that many `take` calls would: the fast path's group
commit asks once per group instead of once per request.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import redis
import redis.asyncio as aredis

_SCRIPT = """
local tokens = tonumber(redis.call('HGET', KEYS[1], 't'))
local stamp = tonumber(redis.call('HGET', KEYS[1], 's'))
local rate, burst, now, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
-- A batch larger than the burst is let through on a full bucket, else it never could be.
cost = math.min(cost, burst)
if tokens == nil then tokens = burst; stamp = now end
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local allowed = 0
if tokens >= cost then tokens = tokens - cost; allowed = 1 end
redis.call('HSET', KEYS[1], 't', tokens, 's', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""


# The same bucket, several costs taken in turn: {allowed, tokens after} per cost.
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


class TokenBucket:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._script = client.register_script(_SCRIPT)
        self._script_each = client.register_script(_SCRIPT_EACH)
        self._prefix = prefix

    def take(self, tenant: str, cost: int, *, rate: float, burst: float) -> QuotaDecision:
        allowed, tokens = self._script(keys=[f"{self._prefix}:quota:{tenant}"], args=[rate, burst, time.time(), cost])
        if int(allowed):
            return QuotaDecision(True, 0)
        return QuotaDecision(False, retry_after(float(tokens), cost, rate, burst))

    def take_each(self, tenant: str, costs: list[int], *, rate: float, burst: float) -> list[QuotaDecision]:
        """One decision per cost, taken in order from the same bucket, in one round trip."""
        if not costs:
            return []
        answer = self._script_each(keys=[f"{self._prefix}:quota:{tenant}"], args=[rate, burst, time.time(), *costs])
        return _decisions(costs, answer, rate, burst)


class AsyncTokenBucket:
    """`TokenBucket.take_each` for an event loop (the fast path's small group commits)."""

    def __init__(self, client: aredis.Redis, prefix: str) -> None:
        self._script_each = client.register_script(_SCRIPT_EACH)
        self._prefix = prefix

    async def take_each(self, tenant: str, costs: list[int], *, rate: float, burst: float) -> list[QuotaDecision]:
        if not costs:
            return []
        answer = await self._script_each(
            keys=[f"{self._prefix}:quota:{tenant}"], args=[rate, burst, time.time(), *costs]
        )
        return _decisions(costs, answer, rate, burst)


def _decisions(costs: list[int], answer: list[object], rate: float, burst: float) -> list[QuotaDecision]:
    decisions = []
    for cost, allowed, tokens in zip(costs, answer[0::2], answer[1::2], strict=True):
        if int(allowed):  # type: ignore[call-overload]
            decisions.append(QuotaDecision(True, 0))
        else:
            decisions.append(QuotaDecision(False, retry_after(float(tokens), cost, rate, burst)))  # type: ignore[arg-type]
    return decisions
