"""Each periodic engine reports its last finished pass in /readyz."""

from __future__ import annotations

import time

from django.test import Client

from beastflow.passes import pass_mark
from beastflow.redis_client import get_redis, key

ENGINES = ("monitor", "polling", "reconciliation", "callbacks")


def components() -> tuple[int, dict[str, dict[str, object]]]:
    response = Client().get("/readyz")
    return response.status_code, response.json()["components"]


def test_a_stalled_engine_is_reported_but_does_not_fail_readiness(db: None) -> None:
    # given: no engine has finished a pass in this namespace
    get_redis().delete(*(key("pass", engine) for engine in ENGINES))
    # when
    status, report = components()
    # then
    assert status == 200
    for engine in ENGINES:
        assert report[engine]["ok"] is False
        assert report[engine]["critical"] is False
        assert report[engine]["last_pass_age_s"] is None


def test_a_finished_pass_makes_the_engine_healthy(db: None) -> None:
    pass_mark("polling")
    _, report = components()
    assert report["polling"]["ok"] is True
    assert 0 <= float(str(report["polling"]["last_pass_age_s"])) < 5


def test_worker_and_beat_keep_every_engine_fresh(db: None, celery_beat: None) -> None:
    get_redis().delete(*(key("pass", engine) for engine in ENGINES))
    deadline = time.monotonic() + 30
    report: dict[str, dict[str, object]] = {}
    # The callbacks sweep and reconciliation dispatch run every 10 s.
    while time.monotonic() < deadline:
        _, report = components()
        if all(report[engine]["ok"] for engine in ENGINES):
            break
        time.sleep(0.5)
    assert {engine: report[engine]["ok"] for engine in ENGINES} == dict.fromkeys(ENGINES, True)
