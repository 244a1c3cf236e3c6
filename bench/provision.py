"""Provisioning at scale: how long a new tenant takes, and migrating many schemas when nothing is pending.

    .venv/bin/python -m beastflow.launch run -- .venv/bin/python bench/provision.py [--tenants 50]

In a fresh database of its own (`beastflow_bench_provision`, dropped at the
end): creates N tenants the way `manage.py tenant create` does (schema
cloned from the template) and a few by running every migration instead (what
creation cost before the template), then times `manage.py migrate_tenants`
with nothing pending (one query over every schema) against
`migrate_schemas --tenant` (Django's migrate in each schema), both as
processes. Prints a table; raw figures in .beastflow/bench/provision.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._world import OUT_DIR, with_database  # noqa: E402

DATABASE = "beastflow_bench_provision"
TARGET_CREATE_S = 0.3


def say(message: str) -> None:
    print(message, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _timed_process(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - started


def run(tenants: int, migrated: int) -> dict[str, Any]:
    import django
    from django.core.management import call_command

    django.setup()
    from django_tenants.models import TenantMixin

    from tenants import schema_template, services
    from tenants.models import Tenant
    from tenants.schema_migrations import survey

    call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
    started = time.perf_counter()
    schema_template.template_ensure()
    template_s = time.perf_counter() - started

    cloned = []
    for n in range(tenants):
        started = time.perf_counter()
        services.tenant_create(slug=f"bench-{n:04d}")
        cloned.append(time.perf_counter() - started)
    say(f"  {tenants} tenants cloned from the template: p50 {statistics.median(cloned) * 1000:.0f} ms")

    full = []
    for n in range(migrated):
        tenant = Tenant(slug=f"full-{n:02d}", name="full", schema_name=f"t_full_{n:02d}", ready=True)
        tenant.auto_create_schema = False
        tenant.save()
        started = time.perf_counter()
        TenantMixin.create_schema(tenant, check_if_exists=True, verbosity=0)  # every migration, as before
        full.append(time.perf_counter() - started)
    say(f"  {migrated} tenants by running every migration: p50 {statistics.median(full) * 1000:.0f} ms")

    surveyed = survey()
    assert not surveyed.pending_tenants and not surveyed.public.pending
    env = dict(os.environ)
    manage = [sys.executable, str(ROOT / "manage.py")]
    skip_s = _timed_process([*manage, "migrate_tenants"], env)
    every_s = _timed_process([*manage, "migrate_schemas", "--tenant", "--noinput", "-v", "0"], env)
    schemas = tenants + migrated
    return {
        "tenants": schemas,
        "template_build_s": template_s,
        "create_cloned_s": {"p50": statistics.median(cloned), "p95": percentile(cloned, 0.95), "max": max(cloned)},
        "create_migrated_s": {"p50": statistics.median(full), "max": max(full)},
        "survey_query_s": surveyed.seconds,
        "migrate_tenants_nothing_pending_s": skip_s,
        "migrate_schemas_every_tenant_s": every_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=50, help="tenants cloned from the template (default 50)")
    parser.add_argument("--migrated", type=int, default=5, help="tenants made by running every migration (default 5)")
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/beastflow")
    url = with_database(base, DATABASE)
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    os.environ.update(
        DATABASE_URL=url,
        DJANGO_SETTINGS_MODULE="beastflow.settings",
        BEASTFLOW_REDIS_PREFIX=f"bfbenchprov{os.getpid()}",
        BEASTFLOW_LOG_LEVEL="WARNING",
    )
    try:
        say(f"setting up: database {DATABASE}, public schema, template")
        report = run(args.tenants, args.migrated)
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))
    created = report["create_cloned_s"]
    verdict = "PASS" if created["p95"] <= TARGET_CREATE_S else "FAIL"
    say(f"\n{'figure':<62} {'value':>12}")
    migrated = report["create_migrated_s"]
    rows = [
        ("template schema built (once per migration set)", f"{report['template_build_s']:.2f} s"),
        (
            "new tenant, cloned from the template: p50 / p95 / max",
            f"{created['p50'] * 1000:.0f} / {created['p95'] * 1000:.0f} / {created['max'] * 1000:.0f} ms",
        ),
        (
            "new tenant, every migration run (before): p50 / max",
            f"{migrated['p50'] * 1000:.0f} / {migrated['max'] * 1000:.0f} ms",
        ),
        (
            f"which schemas have pending migrations, {report['tenants']} tenants: one query",
            f"{report['survey_query_s'] * 1000:.0f} ms",
        ),
        (
            "manage.py migrate_tenants, nothing pending (process)",
            f"{report['migrate_tenants_nothing_pending_s']:.2f} s",
        ),
        ("migrate_schemas --tenant, nothing pending (process)", f"{report['migrate_schemas_every_tenant_s']:.2f} s"),
    ]
    for name, value in rows:
        say(f"{name:<62} {value:>12}")
    say(f"{verdict}  a new tenant in <= {TARGET_CREATE_S * 1000:.0f} ms (p95, measured {created['p95'] * 1000:.0f} ms)")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "provision.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
