"""The platform's own components: database, Redis, broker, migrations, workers.

Only the database and migrations are critical. Redis and the broker (the
same Redis by default) are not: without them ingest still commits and
answers 202 (quota in-process, wakes and publishes caught up later: docs/
reliability.md), so taking the web out of rotation would refuse pushes it
can accept. /readyz then answers 200 with status "degraded" and names them.
"""

from __future__ import annotations

import time

import redis
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from beastflow.health import ComponentHealth, component
from beastflow.redis_client import get_redis, key
from beastflow.tenancy import use_public


def worker_heartbeat_key() -> str:
    return key("worker", "heartbeat")


WORKER_STALE_S = 60.0


@component("database")
def database() -> ComponentHealth:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return ComponentHealth(ok=True, details={"vendor": connection.vendor})


def _down(exc: BaseException, impact: str) -> ComponentHealth:
    error = f"{type(exc).__name__}: {exc}"
    return ComponentHealth(ok=False, critical=False, details={"error": error, "impact": impact})


@component("redis")
def redis_ping() -> ComponentHealth:
    try:
        get_redis().ping()
    except (redis.RedisError, OSError) as exc:
        return _down(exc, "ingest goes on with a per-process quota; websockets and callbacks catch up when it is back")
    return ComponentHealth(ok=True, critical=False)


@component("broker")
def broker() -> ComponentHealth:
    transport = settings.CELERY_BROKER_URL.split(":", 1)[0]
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return _down(exc, "no task runs or is queued: polls, monitor, healing and callbacks wait; ingest goes on")
    finally:
        client.close()
    return ComponentHealth(ok=True, critical=False, details={"transport": transport})


@component("migrations")
def migrations() -> ComponentHealth:
    from tenants.models import Tenant

    use_public()
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    unready = list(Tenant.objects.filter(ready=False).exclude(schema_name="public").values_list("slug", flat=True))
    details: dict[str, object] = {"public_pending": len(pending), "tenants_not_ready": unready}
    return ComponentHealth(ok=not pending, details=details)


@component("workers")
def workers() -> ComponentHealth:
    # Not critical: the API answers and ingests without workers, but an
    # operator must see that nothing polls, reconciles or heals.
    raw = get_redis().get(worker_heartbeat_key())
    if raw is None:
        return ComponentHealth(ok=False, critical=False, details={"last_heartbeat_age_s": None})
    age = time.time() - float(raw)
    return ComponentHealth(ok=age < WORKER_STALE_S, critical=False, details={"last_heartbeat_age_s": round(age, 1)})
