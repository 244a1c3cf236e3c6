"""The healing bandit's pooled prior: every tenant's outcomes summed, kept in Redis, read per choice.

`pool_refresh` (hourly, strategies.tasks) sums StrategyStats over every
tenant schema in one round trip (beastflow.sqlpipe) and fits each pair's strength
(strategies.hierarchy); `prior_for` is registered in healing.healer.PRIORS
by this app's AppConfig.ready(), so healing asks it without importing
strategies. Redis holds only this soft, recomputable summary: after a flush
every tenant learns alone (the flat prior) until the next refresh.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from django.db import connection

from beastflow.redis_client import get_redis, key
from beastflow.sqlpipe import Statement, run_pipelined
from healing.models import StrategyStats
from strategies.hierarchy import Pool, pools, prior
from strategies.params import HealingParams
from tenants.models import Tenant

POOL_KEY = "strategies-bandit-pool"
POOL_TTL_S = 3 * 3600


def pool_refresh() -> int:
    """Sum every tenant's outcomes per (category, strategy); store the pools. Returns how many pairs."""
    schemas = list(Tenant.objects.exclude(schema_name="public").values_list("schema_name", flat=True))
    table = StrategyStats._meta.db_table
    statements: list[Statement] = [
        (f"SELECT category, strategy, successes, failures FROM {connection.ops.quote_name(s)}.{table}", ())  # noqa: S608 (names from the catalog)
        for s in schemas
    ]
    per_tenant = {
        schema: {(category, strategy): (successes, failures) for category, strategy, successes, failures in rows}
        for schema, rows in zip(schemas, run_pipelined(statements), strict=True)
        if rows
    }
    found = pools(per_tenant, cap=HealingParams().max_prior_strength)
    mapping = {
        f"{category}/{strategy}": json.dumps([p.successes, p.failures, p.strength])
        for (category, strategy), p in found.items()
    }
    client = get_redis()
    with client.pipeline() as pipe:
        pipe.delete(key(POOL_KEY))
        if mapping:
            pipe.hset(key(POOL_KEY), mapping=mapping)  # type: ignore[arg-type]
            pipe.expire(key(POOL_KEY), POOL_TTL_S)
        pipe.execute()
    return len(mapping)


def prior_for(category: str, own: Mapping[str, tuple[int, int]]) -> dict[str, tuple[float, float]]:
    """Pseudo-counts per strategy of `category` for the current tenant (its default version's healing params)."""
    raw = get_redis().hgetall(key(POOL_KEY))
    if not raw:
        return {}
    params = _healing_params()
    out: dict[str, tuple[float, float]] = {}
    prefix = f"{category}/"
    for name, value in raw.items():
        pair = name.decode() if isinstance(name, bytes) else name
        if not pair.startswith(prefix):
            continue
        successes, failures, strength = json.loads(value)
        strategy = pair[len(prefix) :]
        out[strategy] = prior(
            Pool(int(successes), int(failures), strength),
            own=own.get(strategy, (0, 0)),
            strength=params.prior_strength,
            cap=params.max_prior_strength,
            fit=params.fit_strength,
        )
    return out


def _healing_params() -> HealingParams:
    from strategies.models import TenantStrategy

    row = TenantStrategy.objects.select_related("default_version").filter(pk=1).first()
    if row is None or row.default_version is None:
        return HealingParams()
    return HealingParams.model_validate(row.default_version.params.get("healing", {}))
