"""bench/scale.py's world builder, run as a child inside the checkout under test.

Creates tenants `first..last` (slugs s0000, s0001, ...) with M sources each
through the product's own services (tenants.services.tenant_create,
engines.sources.source_create): the code measured is whatever BENCH_ROOT
holds, so the same builder builds the world for the current scheduler and
for an older checkout. Prints one JSON line per tenant: its slug, schema,
API key, creation time and sources (id, kind).

Usage: BENCH_ROOT=... python bench/_scale_build.py FIRST LAST SPEC_JSON
"""

from __future__ import annotations

import json
import sys
import time

from _child import django_in_bench_root  # this script's folder is first on sys.path


def main() -> int:
    django_in_bench_root()
    from django_tenants.utils import tenant_context

    from engines import sources
    from tenants import services
    from tenants.models import Tenant

    first, last, spec = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    kinds: list[str] = spec["kinds"]
    for n in range(first, last):
        slug = f"s{n:04d}"
        started = time.perf_counter()
        tenant, key = services.tenant_create(slug=slug, name=f"Scale {n}")
        created_s = time.perf_counter() - started
        Tenant.objects.filter(pk=tenant.pk).update(ingest_rate_per_s=1_000_000, ingest_burst=2_000_000)
        made = []
        with tenant_context(tenant):
            for m, kind in enumerate(kinds):
                body = dict(spec["specs"][kind])
                body["name"] = f"{kind}-{m}"
                source, _ = sources.source_create(spec=sources.parse_spec(body))
                made.append({"id": source.pk, "kind": kind})
        print(
            json.dumps(
                {
                    "slug": slug,
                    "schema": tenant.schema_name,
                    "api_key": key.raw,
                    "create_s": round(created_s, 4),
                    "sources": made,
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
