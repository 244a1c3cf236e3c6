"""Celery beat that ticks only while it holds the clock's leader lock.

Run as many beats as you like (one per machine, or two for availability):
one sends the schedule, the others wait and take over within the lock's
TTL when it stops (BEASTFLOW_LEADER_TTL_S, 10 s by default). Everything
beat sends is a claimer or a dispatcher that finds its work in the
database with SKIP LOCKED, so even the one duplicated tick a frozen
leader may send on waking is harmless (docs/scheduling.md).

The schedule is kept in memory, not in a shelve file: the entries are
short intervals whose last run does not need to survive a restart, and
two beats on one host must not share a file.
"""

from __future__ import annotations

from typing import Any

from celery.beat import Scheduler
from django.conf import settings

from beastflow.redis_client import get_redis, key
from scheduling.leader import LeaderLock


def leader_lock_key() -> str:
    return key("scheduler", "leader")


class LeaderScheduler(Scheduler):  # type: ignore[misc]
    _lock: LeaderLock | None = None

    @property
    def lock(self) -> LeaderLock:
        if self._lock is None:
            self._lock = LeaderLock(get_redis(), leader_lock_key(), settings.BEASTFLOW_LEADER_TTL_S)
        return self._lock

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Send what is due if we lead; returns how long to sleep (renewing well inside the TTL)."""
        if not self.lock.hold():
            # A follower asks again often enough to take over soon after the leader's lock lapses.
            return float(self.lock.ttl_s / 4)
        return float(min(super().tick(*args, **kwargs), self.lock.ttl_s / 3))

    def close(self) -> None:
        self.lock.release()
        super().close()
