"""The upstreams' own webhook verifiers, run in Node: what proves the simulator signs like them.

`@octokit/webhooks-methods` (GitHub's `verify`) and `stripe`
(`stripe.webhooks.constructEvent`) are installed at test time from the npm
registry into a cache folder outside the repository (never vendored),
once per machine; a test that needs them is skipped, saying why, when Node
or the registry is unreachable.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

PACKAGES = {"@octokit/webhooks-methods": "6.0.0", "stripe": "23.2.0"}
CACHE = Path(os.environ.get("BEASTFLOW_NPM_CACHE", Path.home() / ".cache" / "beastflow-npm"))


def npm_folder() -> Path:
    """The cache folder with the packages installed (installed now if needed), or skip the test."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node and npm are needed to run the upstreams' own verifiers")
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs installing at once would corrupt node_modules
        missing = [name for name, version in PACKAGES.items() if _installed(name) != version]
        if missing:
            if not (CACHE / "package.json").exists():
                (CACHE / "package.json").write_text('{"private": true}\n')
            specs = [f"{name}@{PACKAGES[name]}" for name in missing]
            done = subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(CACHE), *specs],
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            if done.returncode != 0:
                pytest.skip(f"npm registry unreachable, cannot install {specs}: {done.stderr.strip()[-300:]}")
    return CACHE


def _installed(name: str) -> str | None:
    with contextlib.suppress(OSError, ValueError, KeyError):
        return str(json.loads((CACHE / "node_modules" / name / "package.json").read_text())["version"])
    return None


_SCRIPT = """
import { verify } from "@octokit/webhooks-methods";
import Stripe from "stripe";
const cases = JSON.parse(await new Promise((ok) => {
  let text = ""; process.stdin.on("data", (c) => (text += c)); process.stdin.on("end", () => ok(text));
}));
const stripe = new Stripe("sk_test_unused");
const out = [];
for (const c of cases) {
  if (c.kind === "github") {
    out.push(await verify(c.secret, c.body, c.signature));
  } else {
    try {
      out.push(stripe.webhooks.constructEvent(c.body, c.signature, c.secret, c.tolerance ?? 300).id);
    } catch (e) {
      out.push(false);
    }
  }
}
console.log(JSON.stringify(out));
"""


def _run(cases: list[dict[str, Any]]) -> list[Any]:
    folder = npm_folder()
    done = subprocess.run(
        ["node", "--input-type=module", "-e", _SCRIPT],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=60,
        check=True,
    )
    return list(json.loads(done.stdout))


def github_verify(secret: str, deliveries: list[tuple[bytes, str]]) -> list[bool]:
    """@octokit/webhooks-methods `verify(secret, body, X-Hub-Signature-256)` for each (body, signature)."""
    cases = [{"kind": "github", "secret": secret, "body": b.decode(), "signature": s} for b, s in deliveries]
    return [bool(ok) for ok in _run(cases)]


def stripe_construct(secret: str, deliveries: list[tuple[bytes, str]]) -> list[str | bool]:
    """stripe's `webhooks.constructEvent(body, Stripe-Signature, secret)`: the event id, or False when refused."""
    cases = [{"kind": "stripe", "secret": secret, "body": b.decode(), "signature": s} for b, s in deliveries]
    return list(_run(cases))
