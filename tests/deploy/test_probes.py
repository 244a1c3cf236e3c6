"""Container probes (beastflow/probes.py) and /readyz narrowed to one process's components."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import Client

from beastflow import probes
from beastflow.redis_client import get_redis
from scheduling import beat as scheduling_beat
from scheduling.beat import leader_lock_key
from tests.stack import free_port


def test_readyz_can_be_asked_about_some_components_only(db: None) -> None:
    # when
    response = Client().get("/readyz?only=database,redis,migrations")
    # then
    body = response.json()
    assert response.status_code == 200, body
    assert set(body["components"]) == {"database", "redis", "migrations"}


def test_readyz_refuses_an_unknown_component_with_a_problem(db: None) -> None:
    response = Client().get("/readyz?only=database,databse")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"] == [{"field": "only", "message": "unknown component 'databse'"}]


def test_the_web_probe_asks_the_process_whether_it_can_serve(live_server_url: str) -> None:
    port = int(live_server_url.rsplit(":", 1)[1])
    assert probes.web(port, timeout_s=10) is None
    problem = probes.web(free_port(), timeout_s=2)
    assert problem is not None and "failed" in problem


def test_the_simulators_probe_needs_something_listening() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        assert probes.simulators(listening.getsockname()[1], timeout_s=2) is None
    assert probes.simulators(free_port(), timeout_s=2) is not None


@pytest.fixture
def no_leader(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A leader lock of this test's own: a session's beat (another process) renews the real one every tick."""
    name = leader_lock_key() + "-probe-test"
    monkeypatch.setattr(scheduling_beat, "leader_lock_key", lambda: name)
    get_redis().delete(name)
    yield name
    get_redis().delete(name)


def test_the_beat_probe_is_healthy_while_some_beat_holds_the_clock(no_leader: str) -> None:
    assert probes.beat() == "no beat holds the clock's leader lock"
    get_redis().set(no_leader, "another-beat", ex=10)
    assert probes.beat() is None


def test_the_migrations_probe_finds_nothing_pending_on_a_migrated_database(personas: object, db: None) -> None:
    assert probes.migrations(wait_s=0) is None


@pytest.mark.e2e
def test_the_worker_probe_pings_this_containers_worker(celery_worker: None) -> None:
    # the test worker runs as <prefix>@<host> (tests/conftest.py)
    assert probes.worker(f"{settings.REDIS_PREFIX}@{socket.gethostname()}", timeout_s=10) is None
    assert probes.worker(f"nobody@{socket.gethostname()}", timeout_s=2) is not None
