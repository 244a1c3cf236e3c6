"""Real upstreams' own npm packages, installed at test time into a cache outside the checkout.

Tests check BeastFlow against what GitHub, Stripe and Standard Webhooks
publish themselves (example payloads, signers, verifiers), never against
copies of ours. The packages are installed once per machine into
`$BEASTFLOW_NPM_CACHE` (default `~/.cache/beastflow-npm`), one folder per
set of package specs, under a file lock so that parallel test runs share
one install. Where npm or the registry cannot be reached the test is
skipped with the reason (never silently).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

_DONE = ".installed"


def npm_cache_root() -> Path:
    return Path(os.environ.get("BEASTFLOW_NPM_CACHE") or Path.home() / ".cache" / "beastflow-npm")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def npm_install(*specs: str, timeout_s: float = 300) -> Path:
    """A folder whose node_modules holds `specs` (e.g. "standardwebhooks@1"); installed on first use."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("node/npm is not installed on this machine: the upstream's own package cannot be run")
    key = hashlib.sha256("\n".join(sorted(specs)).encode()).hexdigest()[:16]
    folder = npm_cache_root() / key
    if (folder / _DONE).exists():
        return folder
    with _locked(npm_cache_root() / f"{key}.lock"):
        if (folder / _DONE).exists():  # another run installed it while we waited
            return folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "package.json").write_text(json.dumps({"name": "beastflow-test-upstreams", "private": True}))
        try:
            result = subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--no-save", "--prefix", str(folder), *specs],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.skip(f"npm install {' '.join(specs)} took over {timeout_s:.0f} s: registry unreachable?")
        if result.returncode != 0:
            pytest.skip(f"npm install {' '.join(specs)} failed (registry unreachable?): {result.stderr[-500:]}")
        (folder / _DONE).write_text("\n".join(specs))
    return folder


def node_run(folder: Path, script: str, payload: Any, *, timeout_s: float = 60) -> Any:
    """Run a Node script in `folder` (so `require` finds its packages) with JSON on stdin; its JSON stdout."""
    result = subprocess.run(
        ["node", "-e", script],
        cwd=folder,
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert result.returncode == 0, f"node failed: {result.stderr[-2000:]}"
    return json.loads(result.stdout)
