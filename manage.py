#!/usr/bin/env python
from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "beastflow.settings")
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        # Same resolution as `make up`: the configured servers, else the local
        # default ports, else the embedded servers under .beastflow/.
        from beastflow import devservices

        state_dir = Path(os.environ.get("BEASTFLOW_STATE_DIR", Path(__file__).resolve().parent / ".beastflow"))
        resolved = devservices.resolve(state_dir)
        for name, value in resolved.items():
            os.environ.setdefault(name, value)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
