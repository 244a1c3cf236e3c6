"""`make up`'s workers: the monitor and the clock's rounds apart from the batch work, which yields the CPU."""

from __future__ import annotations

import pytest
from django.conf import settings

from beastflow import launch


def _queues(argv: list[str]) -> set[str]:
    return set(argv[argv.index("-Q") + 1].split(","))


def test_up_splits_every_queue_between_a_latency_worker_and_a_niced_batch_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BEASTFLOW_WORKER_QUEUES", raising=False)
    monkeypatch.delenv("BEASTFLOW_BATCH_NICE", raising=False)
    # when
    workers = launch.process_commands(split=True)
    # then: each queue consumed by exactly one of them, the monitor's not behind the polls
    latency, batch = _queues(workers["worker"]), _queues(workers["batch"])
    assert latency | batch == set(settings.BEASTFLOW_QUEUES)
    assert not latency & batch
    assert "monitor" in latency and "polls" in batch
    assert workers["batch"][:3] == ["nice", "-n", "10"]
    assert workers["worker"][0] != "nice"
    # the latency worker keeps Celery's default node name: the container probe pings celery@<host>
    assert workers["worker"][workers["worker"].index("-n") + 1] == "celery@%h"
    celery = workers["batch"][3:]  # after `nice -n 10`
    assert celery[celery.index("-n") + 1] == "batch@%h"


def test_the_batch_niceness_is_a_setting_and_a_bad_one_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BEASTFLOW_WORKER_QUEUES", raising=False)
    monkeypatch.setenv("BEASTFLOW_BATCH_NICE", "0")
    assert launch.up_workers()["batch"][0] != "nice"
    monkeypatch.setenv("BEASTFLOW_BATCH_NICE", "high")
    with pytest.raises(SystemExit, match="BEASTFLOW_BATCH_NICE"):
        launch.up_workers()


def test_chosen_queues_and_make_worker_run_one_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEASTFLOW_WORKER_QUEUES", "monitor")
    assert list(launch.up_workers()) == ["worker"]
    assert _queues(launch.up_workers()["worker"]) == {"monitor"}
    monkeypatch.delenv("BEASTFLOW_WORKER_QUEUES")
    assert "-Q" not in launch.process_commands()["worker"]  # `make worker`: every queue
