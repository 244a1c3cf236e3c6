"""bench/scale.py's tenant probe: new tenants created while the service runs, one every few seconds.

Run as a child inside the checkout under test, during a measurement: what
creating a tenant costs a customer while a thousand others' work goes on
(the build's figures are of back-to-back creations, each with its sources).
Prints one JSON line per tenant (`create_s`), then deletes them.

Usage: BENCH_ROOT=... python bench/_scale_probe_tenants.py COUNT EVERY_S
"""

from __future__ import annotations

import json
import os
import sys
import time

from _child import django_in_bench_root  # this script's folder is first on sys.path


def main() -> int:
    django_in_bench_root()
    from tenants import services
    from tenants.models import Tenant

    count, every_s = int(sys.argv[1]), float(sys.argv[2])
    made = []
    try:
        for n in range(count):
            if n:
                time.sleep(every_s)
            slug = f"probe{os.getpid()}x{n}"
            started = time.perf_counter()
            tenant, _ = services.tenant_create(slug=slug)
            print(json.dumps({"slug": slug, "create_s": round(time.perf_counter() - started, 4)}), flush=True)
            made.append(tenant.pk)
    finally:
        for tenant in Tenant.objects.filter(pk__in=made):
            services.tenant_delete(tenant=tenant)
    return 0


if __name__ == "__main__":
    sys.exit(main())
