"""Platform tasks, and the one helper that fans work out to every tenant."""

from __future__ import annotations

import time
from typing import Any

import structlog
from celery import Task
from django.conf import settings
from django_tenants.utils import tenant_context

from beastflow import correlation
from beastflow.celery import app
from beastflow.health_checks import worker_heartbeat_key
from beastflow.redis_client import get_redis, key
from beastflow.tenancy import current_schema

log = structlog.get_logger(__name__)


def fan_out_to_tenants(task: Task, *args: Any, stagger_s: float | None = None, **kwargs: Any) -> int:
    """Send `task` once per ready tenant, each running in that tenant's schema.

    Tenants whose schema is still migrating are skipped (`ready` is set only
    after their migrations finished). Sends are staggered by countdown so
    that a periodic fan-out does not land every tenant's work at once.
    Returns the number of tasks sent.
    """
    from tenants.selectors import ready_tenants

    step = settings.BEASTFLOW_TENANT_FANOUT_STAGGER_S if stagger_s is None else stagger_s
    sent = 0
    for position, tenant in enumerate(ready_tenants()):
        with tenant_context(tenant):
            task.apply_async(args=args, kwargs=kwargs, countdown=position * step if step else None)
        sent += 1
    return sent


@app.task(ignore_result=True)
def worker_heartbeat_task() -> None:
    get_redis().set(worker_heartbeat_key(), str(time.time()), ex=600)


@app.task(ignore_result=True)
def tenant_echo_task(token: str) -> None:
    """Diagnostic: record the schema and correlation id this task ran with.

    Operators (and the tests) use it to prove the path sender -> broker ->
    worker -> tenant schema without touching any tenant data.
    """
    client = get_redis()
    name = key("echo", token)
    client.hset(name, current_schema(), correlation.current() or "")
    client.expire(name, 300)
