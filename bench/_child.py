"""What a bench child (bench/_scale_build.py, bench/_scale_probe_tenants.py) does first.

The children run as scripts from this checkout, against the checkout under
test named by BENCH_ROOT (perhaps an older one): its code is imported and
its Django set up, so what is measured is that checkout's.
"""

from __future__ import annotations

import os
import sys


def django_in_bench_root() -> None:
    root = os.environ["BENCH_ROOT"]
    sys.path.insert(0, root)
    os.chdir(root)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "beastflow.settings")
    import django

    django.setup()
