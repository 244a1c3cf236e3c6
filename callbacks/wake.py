"""Waking a tenant's delivery task, debounced in Redis.

Commits can come a thousand times a second; a tenant needs one delivery task
queued at a time, not one per commit. A wake sets `cb:wake:<schema>` (NX) and
only the caller that set it enqueues the task; the task deletes the key when
it starts, so a commit during its run queues the next one and no wake is lost.
Tenants without an active subscription are marked idle so that their commits
cost no task at all; the mark is refused when a subscription was created
since the task looked (a generation counter), and expires anyway.

Redis holds only hints here: after a flush, wakes simply go through again
and the periodic sweep delivers whatever a lost wake left behind.

With Redis (or the broker) down, a wake is lost, never an error for the
commit that asked for it: it is counted, and for BREAKER_OPEN_S after a
failure no wake tries Redis at all. Nothing committed is missed: deliveries
read each subscription's changes after its cursor in PostgreSQL, and the
sweep (every BEASTFLOW_CALLBACKS_SWEEP_S once beat and the broker are back)
runs them for every tenant with an active subscription.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import redis
import structlog
from django_tenants.utils import schema_context
from kombu.exceptions import OperationalError as BrokerDown
from prometheus_client import Counter
from redis.commands.core import Script

from beastflow.redis_client import get_redis, key

log = structlog.get_logger(__name__)

# After a failed wake, wakes are dropped (counted) for this long without trying Redis.
BREAKER_OPEN_S = 5.0
WAKES_LOST = Counter(
    "beastflow_callback_wakes_lost_total",
    "Callback wakes dropped because Redis or the broker failed (the sweep delivers instead)",
    ["reason"],  # failed | breaker_open
)

# A queued task that never started (lost with its broker message) stops
# blocking wakes after this, and the task expires with it. Long enough to
# outlast a backlogged callbacks queue: with 10 s, a backlog past 10 s
# discarded every wake unrun, so tenants without subscriptions were never
# marked idle and each of their commits queued another (1,000 tenants:
# 5,667 queued, none run). A lost message meanwhile costs a tenant with
# subscriptions at most its next sweep (BEASTFLOW_CALLBACKS_SWEEP_S).
WAKE_TTL_MS = 120_000
# The idle mark is a cache of "no active subscription", dropped explicitly when
# a subscription becomes active (subscriptions_changed), and by a sweep that
# finds one active (idle_clear): the sweep's schedule is in
# PostgreSQL, so a lost invalidation costs sweep-paced deliveries, not lost
# ones. Each expiry costs every idle tenant that pushes one delivery task: at
# 1,000 tenants a 60 s TTL was 17 tasks/s doing nothing, 300 s still 3/s.
IDLE_TTL_S = 3_600

_WAKE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return 1 end
return 0
"""


def wake_key(schema: str) -> str:
    return key("cb", "wake", schema)


def idle_key(schema: str) -> str:
    return key("cb", "idle", schema)


def retry_key(schema: str) -> str:
    return key("cb", "retry", schema)


_IDLE_LUA = """
if tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
return 1
"""


@functools.cache
def _idle_script() -> Script:
    return get_redis().register_script(_IDLE_LUA)


@functools.cache
def _wake_script() -> Script:
    return get_redis().register_script(_WAKE_LUA)


class _Breaker:
    def __init__(self) -> None:
        self.open_until = 0.0

    def is_open(self) -> bool:
        return time.monotonic() < self.open_until

    def trip(self, schema: str, exc: BaseException) -> None:
        if not self.is_open():
            log.warning(
                "callback_wake_lost", schema=schema, error=f"{type(exc).__name__}: {exc}"[:200], paused_s=BREAKER_OPEN_S
            )
        self.open_until = time.monotonic() + BREAKER_OPEN_S


_breaker = _Breaker()


def wake_deliveries(schema: str) -> bool:
    """Enqueue the tenant's delivery task unless one is queued or the tenant is idle.

    False as well when Redis or the broker failed: the wake is lost (counted)
    and the sweep delivers instead.
    """
    if _breaker.is_open():
        WAKES_LOST.labels("breaker_open").inc()
        return False
    try:
        if not _wake_script()(keys=[idle_key(schema), wake_key(schema)], args=[WAKE_TTL_MS]):
            return False
        try:
            # Expires with its wake key: past that a later commit queues a fresh one, so a
            # backlogged queue drops the stale copy on receipt instead of running duplicates.
            _enqueue(schema, expires=WAKE_TTL_MS / 1000)
        except Exception:
            get_redis().delete(wake_key(schema))  # let the next commit try again
            raise
    except (redis.RedisError, OSError, BrokerDown) as exc:
        WAKES_LOST.labels("failed").inc()
        _breaker.trip(schema, exc)
        return False
    return True


def wake_taken(schema: str) -> None:
    """The delivery task started: commits from now on need a new wake."""
    get_redis().delete(wake_key(schema))


def generation_key(schema: str) -> str:
    return key("cb", "gen", schema)


def subscriptions_changed(schema: str) -> None:
    """After a subscription became active (committed): wakes must go through again."""
    client = get_redis()
    client.incr(generation_key(schema))
    client.delete(idle_key(schema))


def idle_generation(schema: str) -> int:
    """Read before looking for active subscriptions; hand to `mark_idle`."""
    return int(get_redis().get(generation_key(schema)) or 0)


def mark_idle(schema: str, *, generation: int) -> bool:
    """Mark the tenant idle, unless a subscription changed since `generation` was read.

    Without the check, a delivery task that found no active subscription
    just before one was created would mark the tenant idle after it, and
    the new subscription would get no wakes until the mark expired.
    """
    return bool(_idle_script()(keys=[generation_key(schema), idle_key(schema)], args=[generation, IDLE_TTL_S]))


def idle_clear(schema: str) -> None:
    """The tenant has an active subscription: drop a stale idle mark, so its commits wake deliveries again."""
    get_redis().delete(idle_key(schema))


def schedule_retry(schema: str, delay_s: float) -> bool:
    """Enqueue one delivery task in `delay_s`, unless one is already scheduled."""
    if not get_redis().set(retry_key(schema), "1", nx=True, px=int(delay_s * 1000) + 1000):
        return False
    _enqueue(schema, countdown=delay_s)
    return True


# How the delivery task is sent: callbacks.tasks registers its apply_async when
# imported (CallbacksConfig.ready() imports it in every process). The tasks
# import services, which import this module, so this one cannot import them.
_senders: list[Callable[..., object]] = []


def deliver_task_register(send: Callable[..., object]) -> None:
    _senders[:] = [send]


def _enqueue(schema: str, **options: Any) -> None:
    if not _senders:
        raise RuntimeError("callbacks.tasks was not imported: no delivery task to send")
    # tenant-schemas-celery sends the task to run in the sending connection's schema.
    with schema_context(schema):
        _senders[0](**options)
