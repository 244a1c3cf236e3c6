"""Per-tenant ingest quota: a token bucket in Redis (one round trip per request).

The bucket refills at the tenant's sustained rate up to its burst; a batch
costs one token per event. Redis holds only this soft state: flushed, every
bucket starts full again, which is the safe direction.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import redis

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
        self._prefix = prefix

    def take(self, tenant: str, cost: int, *, rate: float, burst: float) -> QuotaDecision:
        allowed, tokens = self._script(keys=[f"{self._prefix}:quota:{tenant}"], args=[rate, burst, time.time(), cost])
        if int(allowed):
            return QuotaDecision(True, 0)
        return QuotaDecision(False, retry_after(float(tokens), cost, rate, burst))
