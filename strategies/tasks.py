"""Celery tasks of strategies: thin wrappers (beat entries in beastflow/settings.py)."""

from __future__ import annotations

from django.db import connection
from django_tenants.utils import tenant_context

from beastflow.celery import app
from beastflow.redis_client import get_redis, key
from beastflow.sqlpipe import Statement, run_pipelined
from strategies import metrics
from strategies.bandit_prior import pool_refresh
from strategies.models import Experiment, ExperimentStatus
from strategies.services import RUNNING_KEY, experiment_evaluate
from tenants.models import Tenant

SWEPT_KEY = "strategies-swept"
SWEEP_EVERY_S = 3600


@app.task(ignore_result=True, expires=60.0)
def experiment_evaluate_task() -> int:
    """The current tenant's running experiment: guardrails, the sequential test, promotion. Safe twice."""
    done = 0
    for experiment in Experiment.objects.filter(status=ExperimentStatus.RUNNING):
        experiment_evaluate(experiment=experiment)
        metrics.EVALUATIONS.inc()
        done += 1
    return done


@app.task(ignore_result=True)
def experiments_dispatch_task() -> int:
    """Beat's entry point: an evaluation for each tenant with a running experiment.

    The tenants come from a Redis set kept by experiment_start and _end; once
    an hour (or after a Redis flush) every schema is looked at in one
    round trip, so a lost set costs an hour's delay at most, never an experiment.
    """
    client = get_redis()
    if client.set(key(SWEPT_KEY), 1, nx=True, ex=SWEEP_EVERY_S):
        _sweep()
    schemas = {n.decode() if isinstance(n, bytes) else n for n in client.smembers(key(RUNNING_KEY))}
    if not schemas:
        return 0
    for tenant in Tenant.objects.filter(schema_name__in=schemas):
        with tenant_context(tenant):
            experiment_evaluate_task.apply_async(expires=60.0)
    return len(schemas)


def _sweep() -> None:
    schemas = list(Tenant.objects.exclude(schema_name="public").values_list("schema_name", flat=True))
    table = Experiment._meta.db_table
    statements: list[Statement] = [
        (f"SELECT 1 FROM {connection.ops.quote_name(s)}.{table} WHERE status = 'running' LIMIT 1", ())  # noqa: S608 (names from the catalog)
        for s in schemas
    ]
    running = [schema for schema, rows in zip(schemas, run_pipelined(statements), strict=True) if rows]
    if running:
        get_redis().sadd(key(RUNNING_KEY), *running)


@app.task(ignore_result=True, expires=3600.0)
def bandit_pool_task() -> int:
    """Every tenant's healing outcomes pooled for the bandit's shared prior (strategies.bandit_prior)."""
    return pool_refresh()
