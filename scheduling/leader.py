"""A leader lock in Redis: of all the processes that ask, one holds it at a time.

`SET key token NX PX ttl` takes it; the holder renews it (compare-and-set
on the token, so a holder that lost it cannot renew someone else's) more
often than it expires; it is released on a clean stop. A holder that
stops renewing (killed, frozen, cut off from Redis) loses it when the TTL
runs out, and another process takes over.

Used for the clock (scheduling/beat.py): two beats, one ticking. A holder
paused past its TTL may send at most the ticks it was about to send when
it wakes (it checks before each tick); everything beat sends is safe to
run twice, so that costs nothing but the duplicate.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field

import redis
import structlog
from redis.commands.core import Script

log = structlog.get_logger(__name__)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def new_token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class LeaderLock:
    client: redis.Redis
    name: str
    ttl_s: float
    token: str = field(default_factory=new_token)
    held: bool = False

    def __post_init__(self) -> None:
        self._renew: Script = self.client.register_script(_RENEW)
        self._release: Script = self.client.register_script(_RELEASE)

    def hold(self) -> bool:
        """Take or keep the lock; True while we are the leader. Never raises (Redis down: not the leader)."""
        ttl_ms = max(1, int(self.ttl_s * 1000))
        try:
            if self.held and self._renew(keys=[self.name], args=[self.token, ttl_ms]):
                return True
            was_held = self.held
            self.held = bool(self.client.set(self.name, self.token, nx=True, px=ttl_ms))
            if self.held != was_held:
                log.info("leader_acquired" if self.held else "leader_lost", lock=self.name, token=self.token)
        except redis.RedisError as exc:
            if self.held:
                log.warning("leader_lost", lock=self.name, token=self.token, error=str(exc))
            self.held = False
        return self.held

    def release(self) -> None:
        try:
            if self.held:
                self._release(keys=[self.name], args=[self.token])
        except redis.RedisError:
            pass  # it expires anyway
        self.held = False

    def holder(self) -> str | None:
        raw = self.client.get(self.name)
        return None if raw is None else raw.decode() if isinstance(raw, bytes) else str(raw)
