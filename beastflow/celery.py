"""The Celery app. Tasks run in the schema of the connection that sent them
(tenant-schemas-celery), and carry the sender's correlation id."""

from __future__ import annotations

import os
import time
from typing import Any

import structlog
from celery import signals
from django.db import close_old_connections
from tenant_schemas_celery.app import CeleryApp

from beastflow import correlation, task_metrics  # noqa: F401  (task_metrics: counts tasks on their signals)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "beastflow.settings")

app = CeleryApp("beastflow")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

log = structlog.get_logger("beastflow.tasks")

# When a message was published (epoch seconds), in its headers: how long a
# queue made it wait is what /readyz and the queue-lag metric report.
SENT_AT_HEADER = "bf_sent_at"


@signals.worker_process_init.connect
def _tracing_in_pool_process(**_: Any) -> None:
    # In each pool process, after the fork: a span exporter's thread does not survive one.
    from beastflow import otel

    otel.configure("worker")


@signals.beat_init.connect
def _tracing_in_beat(**_: Any) -> None:
    from beastflow import otel

    otel.configure("beat")


@signals.worker_init.connect
def _worker_metrics_port(**_: Any) -> None:
    # In the main worker process, once: the pool's processes write to its folder (docs/observability.md).
    from beastflow.metrics import serve_process_metrics

    serve_process_metrics("worker")


@signals.beat_init.connect
def _beat_metrics_port(**_: Any) -> None:
    from beastflow.metrics import serve_process_metrics

    serve_process_metrics("beat")


@signals.setup_logging.connect
def _keep_our_logging(**_: Any) -> None:
    """Connected so Celery does not replace the structured logging of settings."""


@signals.before_task_publish.connect
def _send_correlation_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is None:
        return
    if correlation.TASK_HEADER not in headers:
        headers[correlation.TASK_HEADER] = correlation.current() or correlation.new_id()
    headers[SENT_AT_HEADER] = time.time()


@signals.task_prerun.connect
def _bind_correlation_id(task: Any = None, task_id: str | None = None, **_: Any) -> None:
    request = getattr(task, "request", None)
    correlation_id = getattr(request, correlation.TASK_HEADER, None) or (
        (getattr(request, "headers", None) or {}).get(correlation.TASK_HEADER)
    )
    correlation.bind(
        correlation.accept_or_new(correlation_id),
        task=getattr(task, "name", None),
        task_id=task_id,
        schema=getattr(request, "_schema_name", None) or (getattr(request, "headers", None) or {}).get("_schema_name"),
    )


@signals.task_postrun.connect
def _unbind(**_: Any) -> None:
    structlog.contextvars.clear_contextvars()


@signals.task_prerun.connect
@signals.task_postrun.connect
def _connections_recycled(task: Any = None, **_: Any) -> None:
    """Close the connections Django would close between two requests: too old, or unusable after an error.

    Celery's own close after every task is off (settings.CELERY_DB_REUSE_MAX);
    this keeps its reason (never hand a task a broken connection) without a
    new PostgreSQL backend per task. Eager tasks run inside their caller's
    transaction and leave its connection alone.
    """
    if task is not None and getattr(task.request, "is_eager", False):
        return
    close_old_connections()
