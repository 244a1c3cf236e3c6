"""One scheduler, many machines: two beats tick once; two workers judge and poll everything exactly once.

Real processes (celery beat and workers) on the test database, each group
in a Redis namespace of its own so the session's worker and beat, if they
run, neither consume these tasks nor hold this lock (they may claim the
same sources from the database: that is allowed, and counted too).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from engines import sources
from engines.models import HealthSample, PollRun, Source
from scheduling.leader import LeaderLock
from scheduling.models import SourceSchedule
from simulator.runner import SimulatorHandle, start_in_thread
from tests.conftest import Persona, subprocess_env
from tests.factories import make_source
from tests.stack import wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


class Processes:
    """Celery processes of one Redis namespace, stopped (the whole group) at the end."""

    def __init__(self, **env: str) -> None:
        self.prefix = f"bfsched{uuid.uuid4().hex[:8]}"
        self.env = subprocess_env() | {"BEASTFLOW_REDIS_PREFIX": self.prefix, **env}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.redis = redis.Redis.from_url(settings.REDIS_URL)

    def start(self, *argv: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "beastflow", *argv, "-l", "WARNING"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            process_group=0,
        )
        self.procs.append(proc)
        return proc

    def worker(self, name: str) -> subprocess.Popen[bytes]:
        return self.start("worker", "--concurrency", "2", "-n", f"{name}-{self.prefix}@%h")

    def beat(self) -> subprocess.Popen[bytes]:
        return self.start("beat")

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def queue_length(self, queue: str) -> int:
        return int(self.redis.llen(f"{self.prefix}:celery:{queue}"))

    def lock_holder(self) -> str | None:
        raw = self.redis.get(f"{self.prefix}:scheduler:leader")
        return None if raw is None else raw.decode()

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for name in self.redis.scan_iter(match=f"{self.prefix}:*", count=1000):
            self.redis.delete(name)
        self.redis.close()


@pytest.fixture
def processes() -> Iterator[Callable[..., Processes]]:
    made: list[Processes] = []

    def make(**env: str) -> Processes:
        made.append(Processes(**env))
        return made[-1]

    yield make
    for group in made:
        group.close()


def test_a_leader_lock_is_held_by_one_and_taken_over_when_it_lapses() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    name = f"{settings.REDIS_PREFIX}:test:leader:{uuid.uuid4().hex[:6]}"
    first, second = LeaderLock(client, name, ttl_s=0.5), LeaderLock(client, name, ttl_s=0.5)
    try:
        assert first.hold() and not second.hold()
        assert first.hold()  # renewed
        assert first.holder() == first.token
        # the holder stops renewing (frozen, killed): the other takes over once the TTL ran out
        wait_for(second.hold, timeout_s=5, what="the second lock to take over")
        assert not first.hold()  # the old holder cannot renew someone else's lock
        second.release()
        assert client.get(name) is None
    finally:
        client.delete(name)
        client.close()


def test_two_beats_tick_once_and_the_second_takes_over_when_the_first_dies(
    personas: dict[str, Persona], processes: Callable[..., Processes]
) -> None:
    # given: two beats in one namespace, a fast tick, a short lock, no worker consuming
    tick_s, ttl_s = 0.5, 2.0
    group = processes(BEASTFLOW_MONITOR_TICK_S=str(tick_s), BEASTFLOW_LEADER_TTL_S=str(ttl_s))
    beats = [group.beat(), group.beat()]
    wait_for(lambda: group.lock_holder() is not None, timeout_s=30, what="a beat to take the lock")
    wait_for(lambda: group.queue_length("monitor") >= 2, timeout_s=30, what="the first ticks")

    def ticks_over(window_s: float) -> int:
        start = group.queue_length("monitor")
        time.sleep(window_s)  # a rate is counted over a wall-clock window
        return group.queue_length("monitor") - start

    # when / then: one clock, not two
    counted = ticks_over(6.0)
    assert 6 <= counted <= 6.0 / tick_s + 3, counted
    # when: the leader dies without releasing its lock
    holder = group.lock_holder()
    assert holder is not None
    leader = next(p for p in beats if f":{p.pid}:" in holder)
    group.kill(leader)
    wait_for(
        lambda: (group.lock_holder() or holder) != holder, timeout_s=ttl_s + 10, what="the other beat to take over"
    )
    # then: the clock goes on, once
    counted = ticks_over(6.0)
    assert 6 <= counted <= 6.0 / tick_s + 3, counted


@pytest.fixture
def upstream() -> Iterator[SimulatorHandle]:
    with start_in_thread() as handle:
        yield handle


def test_two_workers_judge_and_poll_every_due_source_exactly_once(
    personas: dict[str, Persona],
    django_db_blocker: Any,
    upstream: SimulatorHandle,
    processes: Callable[..., Processes],
) -> None:
    # given: 2 tenants x (15 sources the monitor judges + 10 polling sources), committed, all due now
    run = uuid.uuid4().hex[:6]
    judged_ids: list[int] = []
    judged_keys: list[tuple[str, int]] = []
    polled_ids: list[int] = []
    hold = time.time() + 3600
    with django_db_blocker.unblock():
        for persona in (personas["alice"], personas["charlie"]):
            with tenant_context(persona.tenant):
                for n in range(15):
                    config = {"poll_url": upstream.base_url + "/changes", "expected_interval_s": 3600}
                    source, _ = make_source(f"once-{run}-{n}", config=config)
                    judged_ids.append(source.pk)
                    judged_keys.append((persona.tenant.schema_name, source.pk))
                for n in range(10):
                    source, _ = make_source(
                        f"polled-{run}-{n}",
                        config={"poll_url": upstream.base_url + "/changes"},
                        poll={"min_interval_s": 3600, "max_interval_s": 3600},
                        hysteresis={"min_dwell_s": 3600, "max_dwell_s": 3600},
                    )
                    # in polling, held there for an hour: polled once, never switched meanwhile
                    Source.objects.filter(pk=source.pk).update(
                        mode="polling",
                        hysteresis_state={"mode": "polling", "since": time.time(), "hold_until": hold},
                    )
                    polled_ids.append(source.pk)
        now = timezone.now()
        SourceSchedule.objects.filter(pk__in=polled_ids).update(next_poll_at=now, next_eval_at=now + timedelta(hours=1))
        SourceSchedule.objects.filter(pk__in=judged_ids).update(next_eval_at=now, next_poll_at=None)
        connection.close()
    try:
        # when: two workers and a beat whose claimers and dispatchers race in small batches
        group = processes(
            BEASTFLOW_MONITOR_BATCH="4",
            BEASTFLOW_MONITOR_CLAIMERS="4",
            BEASTFLOW_POLLS_IN_FLIGHT="6",
            BEASTFLOW_MONITOR_ACTIVE_S="3600",
            BEASTFLOW_MONITOR_IDLE_S="3600",
        )
        # The monitor's memory as after an earlier quiet judgement, in this namespace and the
        # session's (whose worker, if it runs, may claim these too, with its own cadence): the
        # first judgement sees a stream that did not move and schedules the next far away,
        # so a second one in this test would be a duplicate, not the cadence.
        for prefix in (group.prefix, settings.REDIS_PREFIX):
            for schema, pk in judged_keys:
                memory = {"at": time.time() - 1, "events": 0, "errors": 0, "hb": 0.0}
                group.redis.hset(f"{prefix}:monitor:{schema}:{pk}", mapping=memory)  # type: ignore[arg-type]
        group.worker("one")
        group.worker("two")
        group.beat()

        def counts() -> tuple[dict[int, int], dict[int, int]]:
            samples: dict[int, int] = {}
            polls: dict[int, int] = {}
            with django_db_blocker.unblock():
                for persona in (personas["alice"], personas["charlie"]):
                    with tenant_context(persona.tenant):
                        sampled = HealthSample.objects.filter(source_id__in=judged_ids)
                        for pk in sampled.values_list("source_id", flat=True):
                            samples[pk] = samples.get(pk, 0) + 1
                        for pk in PollRun.objects.filter(source_id__in=polled_ids).values_list("source_id", flat=True):
                            polls[pk] = polls.get(pk, 0) + 1
                connection.close()
            return samples, polls

        wait_for(
            lambda: (lambda s, p: len(s) == len(judged_ids) and len(p) == len(polled_ids))(*counts()),
            timeout_s=90,
            what="every source judged and polled",
        )
        # a duplicate would be a message already sent: wait until none is left to run
        wait_for(
            lambda: group.queue_length("polls") == 0 and group.queue_length("monitor") == 0,
            timeout_s=30,
            what="the queues to drain",
        )
        samples, polls = counts()
        # then: each judged once (one sample: the first judgement always samples), each polled once
        assert samples == dict.fromkeys(judged_ids, 1), samples
        assert polls == dict.fromkeys(polled_ids, 1), polls
        with django_db_blocker.unblock():
            rows = SourceSchedule.objects.filter(pk__in=judged_ids).values_list("next_eval_at", flat=True)
            # rescheduled far past a claim's lease (30 s): judged, not left claimed (the session's worker,
            # if it took some, schedules them by its own idle cap, 300 s)
            assert all(at is not None and at > timezone.now() + timedelta(minutes=2) for at in rows)
            connection.close()
    finally:
        with django_db_blocker.unblock():
            for persona in (personas["alice"], personas["charlie"]):
                with tenant_context(persona.tenant):
                    for source in Source.objects.filter(pk__in=judged_ids + polled_ids):
                        sources.source_delete(source=source)
            connection.close()
