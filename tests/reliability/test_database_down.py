"""PostgreSQL going away under the real web processes: 503 with Retry-After everywhere, never 500, and back alone.

The web processes reach the test database through a TCP link the test
cuts (every connection reset, new ones refused: what a restarting or
unreachable PostgreSQL looks like to a client) and then mends.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from django.db import connection

from tests.conftest import Persona, subprocess_env
from tests.reliability.support import CuttableLink, wait_for, web_server

pytestmark = pytest.mark.e2e


@pytest.fixture
def database_link(personas: dict[str, Persona]) -> Iterator[CuttableLink]:
    settings = connection.settings_dict
    link = CuttableLink((settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432)))
    link.mend()
    try:
        yield link
    finally:
        link.cut()


def _through(link: CuttableLink) -> dict[str, str]:
    url = subprocess_env()["DATABASE_URL"]
    host_port = url.split("@", 1)[1].split("/", 1)[0]
    return {"DATABASE_URL": url.replace(f"@{host_port}/", f"@127.0.0.1:{link.port}/")}


def _unavailable(response: httpx.Response) -> bool:
    return (
        response.status_code == 503
        and response.headers["content-type"] == "application/problem+json"
        and int(response.headers["retry-after"]) > 0
        and response.json()["status"] == 503
    )


def test_every_view_answers_503_while_the_database_is_away_and_recovers_alone(
    database_link: CuttableLink, committed_source: tuple[int, str], personas: dict[str, Persona]
) -> None:
    # given: both front doors, serving
    source_id, alice = committed_source[0], personas["alice"]
    auth = {"Authorization": f"Bearer {alice.api_key}"}
    event = {"id": "pg-1", "type": "upsert", "key": "k", "version": 1, "data": {}}
    with web_server(_through(database_link)) as fast, web_server(_through(database_link), wsgi=True) as django_view:
        assert httpx.get(f"{fast}/api/v1/sources", headers=auth, timeout=10).status_code == 200
        assert httpx.get(f"{django_view}/api/v1/sources", headers=auth, timeout=10).status_code == 200

        # when: the database goes away
        database_link.cut()
        started = time.monotonic()
        answers = {
            "API list": httpx.get(f"{fast}/api/v1/sources", headers=auth, timeout=30),
            "API create": httpx.post(f"{fast}/api/v1/sources", json={"name": "x"}, headers=auth, timeout=30),
            # an unknown key is looked up by a middleware, before any view runs
            "key lookup": httpx.get(f"{fast}/api/v1/sources", headers={"Authorization": "Bearer bf_x"}, timeout=30),
            "ingest fast path": httpx.post(
                f"{fast}/api/v1/sources/{source_id}/events", json=event, headers=auth, timeout=30
            ),
            "ingest Django view": httpx.post(
                f"{django_view}/api/v1/sources/{source_id}/events", json=event, headers=auth, timeout=30
            ),
            "changes feed": httpx.get(f"{django_view}/api/v1/changes?after=0", headers=auth, timeout=30),
        }
        slowest_503 = max(response.elapsed.total_seconds() for response in answers.values())
        # then: a 503 problem with Retry-After, never a 500
        for name, response in answers.items():
            assert _unavailable(response), f"{name}: {response.status_code} {response.text[:300]}"
        assert httpx.get(f"{fast}/healthz", timeout=10).status_code == 200
        ready = httpx.get(f"{fast}/readyz?only=database,redis", timeout=10)
        assert ready.status_code == 503 and ready.json()["failing"] == ["database"]

        # when: the database comes back
        database_link.mend()
        back = time.monotonic()

        # then: both recover by themselves
        def serving() -> bool:
            listed = httpx.get(f"{fast}/api/v1/sources", headers=auth, timeout=30).status_code
            return (
                listed == 200
                and httpx.get(f"{django_view}/api/v1/sources", headers=auth, timeout=30).status_code == 200
            )

        wait_for(serving, 30, "both web processes serve again", every_s=0.2)
        recovered_s = time.monotonic() - back
        pushed = httpx.post(f"{fast}/api/v1/sources/{source_id}/events", json=event, headers=auth, timeout=30)
        assert pushed.status_code == 202, pushed.text
        assert (
            httpx.post(
                f"{django_view}/api/v1/sources/{source_id}/events",
                json=event | {"id": "pg-2", "version": 2},
                headers=auth,
                timeout=30,
            ).status_code
            == 202
        )
    print(
        f"database down: slowest 503 {slowest_503:.3f} s, outage {back - started:.1f} s,"
        f" serving again {recovered_s:.3f} s after"
    )
