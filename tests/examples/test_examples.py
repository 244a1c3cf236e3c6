"""Every script of examples/ run as a user runs it, against the live service, a real worker and beat.

Each gets BEASTFLOW_URL and BEASTFLOW_API_KEY (a tenant of its own) and
nothing else, except where its docstring says (GITHUB_* for another
repository than the demo's, BEASTFLOW_PRESET_DIRS on the server).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from beastflow_sdk import upsert

from simulator.runner import start_in_thread
from tests.conftest import web_server
from tests.sdk.conftest import SdkTenant, source_body
from tests.stack import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("celery_beat")]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _env(tenant: SdkTenant, url: str | None = None, **more: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("GITHUB_", "BEASTFLOW_"))}
    return env | {"BEASTFLOW_URL": url or tenant.url, "BEASTFLOW_API_KEY": tenant.api_key} | more


def run(script: str, tenant: SdkTenant, *args: str, url: str | None = None, timeout_s: float = 180, **env: str) -> str:
    """Run an example to its end; its output (fails with the output when it exits non-zero)."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=ROOT,
        env=_env(tenant, url, **env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert done.returncode == 0, f"{script} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture
def started(sdk_tenant: SdkTenant) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start an example in the background; stopped after the test if still running."""
    processes: list[subprocess.Popen[str]] = []

    def start(script: str, *args: str, **env: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, str(EXAMPLES / script), *args],
            cwd=ROOT,
            env=_env(sdk_tenant, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def read_until(process: subprocess.Popen[str], marker: str, timeout_s: float = 30) -> list[str]:
    """Lines of its output up to the one containing `marker`."""
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"no {marker!r} in {lines}; stderr: {process.stderr.read() if process.poll() else ''}")


def test_every_example_has_a_readme_line() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    scripts = sorted(path.name for path in EXAMPLES.glob("*.py"))
    assert scripts and all(f"`{script}`" in readme for script in scripts), scripts


def test_push_events(sdk_tenant: SdkTenant) -> None:
    out = run("push_events.py", sdk_tenant)
    assert "a batch of 100: {'accepted': 100, 'duplicates': 0}" in out
    assert "the batch again (a redelivery): {'accepted': 0, 'duplicates': 100}" in out
    assert "order-2 is at version 2" in out and "100 orders stored" in out
    with sdk_tenant.client() as bf:
        assert bf.sources.list()["results"] == []  # deleted at the end


def test_follow_changes_resumes_after_a_restart(
    sdk_tenant: SdkTenant, started: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    state = str(tmp_path / "follow.seq")
    with sdk_tenant.client() as bf:
        source_id = bf.sources.create(source_body())["id"]
        bf.push_batch(source_id, [upsert(f"k{i}", 1, {}) for i in range(5)])
        # when: a first run handles three changes and stops
        first = run("follow_changes.py", sdk_tenant, "--count", "3", "--state", state)
        # and a second run goes on from there, then follows live changes
        second = started("follow_changes.py", "--count", "4", "--state", state)
        read_until(second, "following changes after seq")
        bf.push_batch(source_id, [upsert(f"k{i}", 1, {}) for i in range(5, 7)])
        out, _ = second.communicate(timeout=60)
    # then: every change once, in order, across the restart
    keys = re.findall(r"upsert (k\d+) v1", first + out)
    assert keys == [f"k{i}" for i in range(7)], first + out
    assert "stopped at seq" in out and Path(state).read_text().isdigit()


@pytest.mark.parametrize("scheme", ["beastflow", "standard-webhooks"])
def test_callback_receiver_verifies_real_deliveries(
    scheme: str, sdk_tenant: SdkTenant, started: Callable[..., subprocess.Popen[str]]
) -> None:
    with sdk_tenant.client() as bf:
        source_id = bf.sources.create(source_body())["id"]
        receiver = started("callback_receiver.py", "--port", str(free_port()), "--scheme", scheme, "--count", "3")
        read_until(receiver, "listening")
        bf.push_batch(source_id, [upsert(f"k{i}", 1, {}) for i in range(3)])
        out, err = receiver.communicate(timeout=90)
        assert receiver.returncode == 0, err
        assert re.findall(r"verified seq \d+ upsert (k\d)", out) == ["k0", "k1", "k2"], out
        assert "refused" not in out
        assert bf.subscriptions.list()["results"] == []  # deleted on exit


@pytest.mark.parametrize(("decision", "left"), [("approved", 5), ("rejected", 20)])
def test_approve_healing(decision: str, left: int, sdk_tenant: SdkTenant) -> None:
    args = ["--port", str(free_port())] + (["--reject"] if decision == "rejected" else [])
    out = run("approve_healing.py", sdk_tenant, *args)
    assert "is awaiting_approval; action" in out and "(full_reconcile, risk high)" in out, out
    assert f"{decision} by api_key:" in out, out
    assert f"the source holds {left} orders" in out, out
    if decision == "approved":
        assert re.search(r"action \d+ succeeded", out), out


def test_github_issues_against_the_demos_simulated_github_then_one_named_by_env(sdk_tenant: SdkTenant) -> None:
    github = start_in_thread(
        token="ghp_example", initial_records=12, profile="github", profile_options={"owner": "octo", "repo": "hello"}
    )
    try:
        # given: what make up's demo tenant has, a demo-github source on the simulated GitHub
        with sdk_tenant.client() as bf:
            bf.sources.create(
                {
                    "name": "demo-github",
                    "preset": "github-issues",
                    "config": {
                        "base_url": github.base_url,
                        "owner": "octo",
                        "repo": "hello",
                        "headers": {"Authorization": "Bearer ghp_example"},
                    },
                    "push": {"secret": "the demo's"},
                }
            )
        # when: run as written, then again naming the repository (a second run starts afresh)
        outs = [
            run("github_issues.py", sdk_tenant),
            run(
                "github_issues.py",
                sdk_tenant,
                GITHUB_API_URL=github.base_url,
                GITHUB_OWNER="octo",
                GITHUB_REPO="hello",
                GITHUB_TOKEN="ghp_example",
            ),
        ]
    finally:
        github.stop()
    # then
    for out in outs:
        assert f"octo/hello at {github.base_url}" in out, out
        assert "ping: 202 {'accepted': 0, 'duplicates': 0, 'ignored': 1}" in out, out
        assert len(re.findall(r"^  #\d+ \[(open|closed)\] ", out, re.MULTILINE)) == 5, out
        assert re.search(r"^12 issues;", out, re.MULTILINE), out
    with sdk_tenant.client() as bf:
        assert sorted(s["name"] for s in bf.sources.iter()) == ["demo-github", "example-github"]


def test_custom_preset(sdk_tenant: SdkTenant) -> None:
    with web_server(env={"BEASTFLOW_PRESET_DIRS": str(EXAMPLES / "presets")}) as url:
        out = run("custom_preset.py", sdk_tenant, "--port", str(free_port()), url=url)
    assert "preset inventory-items: Items of an inventory API (example preset) (connector rest)" in out
    assert "60 items arrived by poll" in out and "'quantity': 0" in out, out


def test_custom_preset_says_how_to_load_it_when_the_server_lacks_it(sdk_tenant: SdkTenant) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "custom_preset.py"), "--port", str(free_port())],
        cwd=ROOT,
        env=_env(sdk_tenant),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "BEASTFLOW_PRESET_DIRS=examples/presets" in done.stderr
