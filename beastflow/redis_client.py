"""One Redis connection pool per process, shared by everything that needs Redis."""

from __future__ import annotations

import functools

import redis
from django.conf import settings


@functools.cache
def get_redis() -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
    )


def key(*parts: object) -> str:
    """A namespaced Redis key: prefix:part:part."""
    return ":".join([settings.REDIS_PREFIX, *(str(part) for part in parts)])
