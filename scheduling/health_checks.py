"""`/readyz` components that tell whether the work keeps up: the monitor's lag and the queues' lag.

- `monitor_lag`: how long the oldest due-but-unjudged source has waited
  past its deadline. Past BEASTFLOW_READY_MONITOR_LAG_S the service is
  not ready: sources are not being judged, so none would leave a broken
  push for polling.
- `queues`: each queue's depth and how long its oldest message has waited;
  past BEASTFLOW_READY_QUEUE_LAG_S the service is not ready, naming the queue.

Both are critical only while a worker is alive (its heartbeat is fresh).
With no worker at all the `workers` component already says so, and is not
critical on purpose: the API keeps accepting and serving data without
workers. What these two catch is the failure that used to be silent:
workers running, but behind.
"""

from __future__ import annotations

import time

from django.conf import settings

from beastflow.health import ComponentHealth, FunctionComponent, register
from beastflow.health_checks import WORKER_STALE_S, worker_heartbeat_key
from beastflow.redis_client import get_redis
from scheduling.claims import oldest_due_eval
from scheduling.queues import queue_states


def workers_alive() -> bool:
    raw = get_redis().get(worker_heartbeat_key())
    return raw is not None and time.time() - float(raw) < WORKER_STALE_S


def monitor_lag() -> ComponentHealth:
    due, lag = oldest_due_eval()
    bound = settings.BEASTFLOW_READY_MONITOR_LAG_S
    return ComponentHealth(
        ok=lag <= bound,
        critical=workers_alive(),
        details={"due_sources": due, "oldest_due_s": round(lag, 1), "bound_s": bound},
    )


def queues() -> ComponentHealth:
    bound = settings.BEASTFLOW_READY_QUEUE_LAG_S
    states = queue_states()
    late = [s.name for s in states if s.oldest_age_s is not None and s.oldest_age_s > bound]
    details: dict[str, object] = {
        s.name: {"depth": s.depth, "oldest_s": None if s.oldest_age_s is None else round(s.oldest_age_s, 1)}
        for s in states
    }
    details["bound_s"] = bound
    if late:
        details["late"] = late
    return ComponentHealth(ok=not late, critical=workers_alive(), details=details)


register(FunctionComponent(name="monitor_lag", probe=monitor_lag))
register(FunctionComponent(name="queues", probe=queues))
