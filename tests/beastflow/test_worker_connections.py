"""A worker keeps its PostgreSQL connection from task to task, and drops it as Django would per request."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from celery.fixups.django import DjangoWorkerFixup
from django.db import DatabaseError, connection

from beastflow.celery import _connections_recycled, app
from tests.threads import on_own_connection

A_TASK = SimpleNamespace(request=SimpleNamespace(is_eager=False))


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def _around_a_task(fixup: DjangoWorkerFixup) -> None:
    """What a worker runs before and after each task: Celery's Django fixup, then ours."""
    fixup.on_task_prerun(sender=A_TASK)
    _connections_recycled(task=A_TASK)
    fixup.on_task_postrun(sender=A_TASK)
    _connections_recycled(task=A_TASK)


def test_tasks_share_one_connection_until_it_is_too_old(db: None, settings: Any) -> None:
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 60

    def check() -> None:
        fixup = DjangoWorkerFixup(app)
        first = _backend_pid()
        # when: three tasks run
        for _ in range(3):
            _around_a_task(fixup)
            # then: each finds the same backend (Celery alone opens a new one per task)
            assert _backend_pid() == first
        # a connection past CONN_MAX_AGE is closed after its task, and the next task opens a new one
        connection.close_at = time.monotonic() - 1
        _around_a_task(fixup)
        assert connection.connection is None
        assert _backend_pid() != first

    # A connection of its own, in autocommit as a worker's is (the test's is inside its transaction,
    # and transactional_db would flush the session's committed tenants).
    on_own_connection(check)


def test_a_connection_broken_in_a_task_is_not_handed_to_the_next(db: None, settings: Any) -> None:
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 60

    def check() -> None:
        fixup = DjangoWorkerFixup(app)
        first = _backend_pid()
        # given: the server ends the backend while a task holds it (a restart, an idle timeout)
        _terminate(first)
        with pytest.raises(DatabaseError):
            _backend_pid()
        # when the task ends
        _around_a_task(fixup)
        # then: the next task runs on a new, working connection
        assert connection.connection is None
        assert _backend_pid() != first

    # A connection of its own, in autocommit as a worker's is (the test's is inside its transaction,
    # and transactional_db would flush the session's committed tenants).
    on_own_connection(check)


def _terminate(pid: int) -> None:
    """End backend `pid` from a connection of its own."""
    db = connection.settings_dict
    conninfo = f"host={db['HOST']} port={db['PORT'] or 5432} user={db['USER']} dbname={db['NAME']}"
    with psycopg.connect(conninfo, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
