"""docs/quickstart.md's Python block, run as written against the live server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sdk.conftest import SdkTenant

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_the_quickstart_pushes_and_follows_as_written(sdk_tenant: SdkTenant) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "quickstart.md").read_text(), re.DOTALL)
    assert len(blocks) == 1
    env = dict(os.environ) | {"BEASTFLOW_URL": sdk_tenant.url, "BEASTFLOW_API_KEY": sdk_tenant.api_key}
    done = subprocess.run(
        [sys.executable, "-c", blocks[0]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1:3] == ["{'accepted': 1, 'duplicates': 0}"] * 2, lines
    assert "'version': 2" in lines[3] and "'total': 15.0" in lines[3], lines
    assert [line.split()[1:4] for line in lines[4:]] == [["upsert", "order-42", "1"], ["upsert", "order-42", "2"]]
