"""Shared fixtures: two tenants with personas, API clients, a real worker.

One test database for the session; tenants acme (alice) and globex
(charlie) are created once, committed, and every test runs in a
transaction that is rolled back (docs/testing.md: a schema per test is slow).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.db import connections
from django_tenants.utils import tenant_context
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient

from beastflow.tenancy import use_public
from tenants import services
from tenants.models import Tenant

# Property tests judge behaviour, not speed: on a 2-core machine shared with a
# worker, a browser or a bench, drawing examples can take long enough to trip
# Hypothesis's timing checks (seen: test_fairshare's generation under a
# 1,000-tenant bench), which would make them flaky for no fault of the code.
hypothesis_settings.register_profile("beastflow", deadline=None, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("beastflow")


@dataclass(frozen=True)
class Persona:
    name: str
    tenant: Tenant
    api_key: str

    def client(self) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.api_key}")
        return client


def _ensure_tenant(slug: str) -> tuple[Tenant, str]:
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        tenant, issued = services.tenant_create(slug=slug, name=slug.title())
    else:
        issued = services.apikey_create(tenant=tenant, label="tests")
    return tenant, issued.raw


@pytest.fixture(scope="session")
def django_db_setup(
    django_db_setup: None,
    django_db_blocker: pytest.FixtureRequest,
    django_db_keepdb: bool,
    django_db_createdb: bool,
) -> Iterator[None]:
    """pytest-django's, plus the test database when no collected test asked for one.

    pytest-django sets the test database up only for tests that use `db`,
    `transactional_db`, `live_server` or the marker. Browser and end-to-end
    tests commit their rows through `personas` and `django_db_blocker`
    instead; run on their own, they would have talked to DATABASE_URL's
    database, the one `make up` serves.
    """
    from django.test.utils import setup_databases, teardown_databases

    connection = connections["default"]
    if connection.settings_dict["NAME"] == connection.creation._get_test_db_name():
        yield  # pytest-django did it
        return
    keepdb = django_db_keepdb and not django_db_createdb
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        config = setup_databases(verbosity=0, interactive=False, aliases={"default"}, keepdb=keepdb)
    yield
    if not keepdb:
        with django_db_blocker.unblock():  # type: ignore[attr-defined]
            teardown_databases(config, verbosity=0)


@pytest.fixture(scope="session")
def personas(django_db_setup: None, django_db_blocker: pytest.FixtureRequest) -> dict[str, Persona]:
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        acme, alice_key = _ensure_tenant("acme")
        globex, charlie_key = _ensure_tenant("globex")
        use_public()
    return {
        "alice": Persona("alice", acme, alice_key),
        "charlie": Persona("charlie", globex, charlie_key),
    }


@pytest.fixture
def alice(personas: dict[str, Persona], db: None) -> Persona:
    return personas["alice"]


@pytest.fixture
def charlie(personas: dict[str, Persona], db: None) -> Persona:
    return personas["charlie"]


@pytest.fixture
def in_acme(alice: Persona) -> Iterator[Tenant]:
    """Run the test body's ORM calls in acme's schema."""
    with tenant_context(alice.tenant):
        yield alice.tenant


@pytest.fixture(scope="session", autouse=True)
def _redis_namespace_removed_at_the_end() -> Iterator[None]:
    """Every Redis key of this run (cache, broker, quotas, monitor memory) goes with it."""
    yield
    from beastflow.redis_client import get_redis, key

    client = get_redis()
    for name in client.scan_iter(match=key("*"), count=1000):
        client.delete(name)


@pytest.fixture(autouse=True)
def _public_after_each_test() -> Iterator[None]:
    yield
    use_public()


@pytest.fixture
def close_db_threads() -> Iterator[None]:
    """Websocket tests leave a DB connection in Channels' thread.

    See docs/testing.md, "Websockets and database connections".
    """
    yield
    connections.close_all()


def subprocess_env() -> dict[str, str]:
    """Environment for a child process (CLI, worker) that must see the test database."""
    import os

    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    env = dict(os.environ)
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"
    if db.get("PASSWORD"):
        env["DATABASE_URL"] = env["DATABASE_URL"].replace(f"{db['USER']}@", f"{db['USER']}:{db['PASSWORD']}@")
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["BEASTFLOW_REDIS_PREFIX"] = settings.REDIS_PREFIX
    return env


@pytest.fixture(scope="session")
def celery_worker(personas: dict[str, Persona]) -> Iterator[None]:
    """A real Celery worker process on the test database and Redis namespace."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    from django.conf import settings

    from beastflow.redis_client import get_redis, key

    root = Path(__file__).resolve().parents[1]
    get_redis().delete(*get_redis().keys(key("celery", "*")) or ["-"])
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "beastflow",
            "worker",
            "--concurrency",
            "2",
            "-l",
            "WARNING",
            "-n",
            f"{settings.REDIS_PREFIX}@%h",
        ],
        cwd=root,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
    )
    try:
        from beastflow.celery import app

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if app.control.inspect(timeout=0.5).ping():
                break
            if process.poll() is not None:
                raise RuntimeError("the Celery worker exited at start-up")
        else:
            raise RuntimeError("the Celery worker did not answer within 30 s")
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def committed_source(
    personas: dict[str, Persona], django_db_blocker: pytest.FixtureRequest
) -> Iterator[tuple[int, str]]:
    """A committed source in acme (for worker, websocket and live-server tests), removed after."""
    from engines import sources
    from engines.models import Source
    from tests.factories import make_source

    with django_db_blocker.unblock(), tenant_context(personas["alice"].tenant):  # type: ignore[attr-defined]
        import uuid

        source, secret = make_source(f"committed-{uuid.uuid4().hex[:8]}")
    try:
        yield source.pk, secret
    finally:
        with django_db_blocker.unblock(), tenant_context(personas["alice"].tenant):  # type: ignore[attr-defined]
            found = Source.objects.filter(pk=source.pk).first()
            if found is not None:
                sources.source_delete(source=found)
        use_public()


@contextlib.contextmanager
def web_server(port: int | None = None, *, env: dict[str, str] | None = None) -> Iterator[str]:
    """The real ASGI application (fast ingest path included) under uvicorn, on the test database.

    `port`: a given one (to start a server again where clients reconnect), else a free one;
    `env`: more environment for it (e.g. BEASTFLOW_PRESET_DIRS).
    """
    import subprocess
    import sys
    from pathlib import Path

    from tests.stack import free_port, stop, wait_healthy

    port = port or free_port()
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "beastflow.asgi:application", "--port", str(port), "--no-access-log"],
        cwd=root,
        env=subprocess_env() | (env or {}),
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, [process])
        yield url
    finally:
        stop([process], timeout_s=10)


@pytest.fixture(scope="session")
def live_server_url(personas: dict[str, Persona]) -> Iterator[str]:
    """The real ASGI application under uvicorn for the whole session (see `web_server`)."""
    with web_server() as url:
        yield url


@pytest.fixture(scope="session")
def celery_beat(celery_worker: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Celery beat with a fast monitor tick, so end-to-end tests see switches in seconds."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    schedule = tmp_path_factory.mktemp("beat") / "schedule"
    env = subprocess_env() | {"BEASTFLOW_MONITOR_TICK_S": "0.5"}
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "beastflow", "beat", "-l", "WARNING", "--schedule", str(schedule)],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
