"""/metrics shows what the workers and beat did, not only the web process (docs/observability.md).

A web server, a worker and beat of their own, sharing one multiprocess
folder the way `make up` runs them, on a Redis namespace of their own (so no
other test's worker takes their tasks). A simulated upstream pushes to the
web; a poll is asked for through the API and the monitor judges the source on
beat's clock. The counts that only a worker or beat can make must show on
the web's /metrics.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django_tenants.utils import tenant_context

from engines.models import Source
from simulator.runner import start_in_thread
from tests.conftest import Persona, subprocess_env
from tests.stack import forget_namespace, free_port, run_stack, scrape, stop, total

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "upstream-token"


@pytest.fixture
def stack(personas: dict[str, Persona], tmp_path: Path) -> Iterator[str]:
    """web + worker + beat sharing a metrics folder; yields the web's URL."""
    with run_stack(tmp_path, env=subprocess_env()) as url:
        yield url


@pytest.mark.e2e
def test_metrics_of_worker_and_beat_show_on_the_webs_metrics(
    stack: str, personas: dict[str, Persona], django_db_blocker: Any
) -> None:
    from engines import sources

    # given: a source whose simulated upstream pushes to this web server
    alice = personas["alice"]
    sim_port = free_port()
    spec = {
        "name": f"obs-{uuid.uuid4().hex[:8]}",
        "connector": "simulator",
        "config": {
            "poll_url": f"http://127.0.0.1:{sim_port}/changes",
            "snapshot_url": f"http://127.0.0.1:{sim_port}/snapshot",
            "headers": {"Authorization": f"Bearer {TOKEN}"},
            "expected_interval_s": 0.5,
            "timeout_s": 3,
        },
    }
    with django_db_blocker.unblock(), tenant_context(alice.tenant):  # type: ignore[attr-defined]
        source, secret = sources.source_create(spec=sources.parse_spec(spec))
    sim = start_in_thread(
        port=sim_port,
        ingest_url=f"{stack}/api/v1/sources/{source.pk}/events",
        webhook_secret=secret,
        token=TOKEN,
        mutations_per_s=5.0,
        heartbeat_s=0.25,
        key_space=20,
        seed=3,
        run_id=uuid.uuid4().hex[:6],
    )
    try:
        # when: a poll is asked for (a worker runs it) and beat's clock drives the monitor
        answer = httpx.post(
            f"{stack}/api/v1/sources/{source.pk}/poll",
            headers={"Authorization": f"Bearer {alice.api_key}"},
            timeout=10,
        )
        assert answer.status_code in (200, 202), answer.text
        deadline = time.monotonic() + 60
        wanted = {
            # the worker's
            "polls": ("beastflow_polls_total", {}),
            "poll requests": ("beastflow_poll_requests_total", {"outcome": "ok"}),
            "poll duration": ("beastflow_poll_duration_seconds_count", {}),
            # The monitor's passes, not its judgements: the deadlines live in the shared
            # database, so another test's worker still running may judge this source first
            # (the claims are SKIP LOCKED across every worker); this stack's passes are its own.
            "monitor ticks": ("beastflow_monitor_tick_seconds_count", {}),
            "tasks run": ("beastflow_tasks_total", {"task": "engines.tasks.monitor_claim_task", "state": "success"}),
            # beat's: only beat publishes the claimers
            "claimers sent": ("beastflow_tasks_sent_total", {"task": "engines.tasks.monitor_claim_task"}),
            # the web's own
            "ingest": ("beastflow_ingest_stage_seconds_count", {"stage": "commit"}),
        }
        while True:
            samples = scrape(stack)
            missing = [what for what, (name, labels) in wanted.items() if total(samples, name, **labels) <= 0]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        # then
        assert missing == [], f"still zero after 60 s: {missing}"
        assert total(samples, "beastflow_sources", tenant="acme") >= 1  # scrape-time gauges served once
        assert len(samples["beastflow_sources"]) == len(
            {tuple(sorted(labels.items())) for labels, _ in samples["beastflow_sources"]}
        )
        assert any(labels.get("source") == str(source.pk) for labels, _ in samples["beastflow_source_health_score"])
        for stage in ("auth", "validate", "commit", "publish"):
            assert total(samples, "beastflow_ingest_stage_seconds_count", stage=stage) > 0, stage
    finally:
        sim.stop()
        with django_db_blocker.unblock(), tenant_context(alice.tenant):  # type: ignore[attr-defined]
            found = Source.objects.filter(pk=source.pk).first()
            if found is not None:
                sources.source_delete(source=found)


@pytest.mark.e2e
def test_beat_in_a_container_of_its_own_serves_its_metrics_on_a_port(
    personas: dict[str, Persona], tmp_path: Path
) -> None:
    # given: beat alone, with its own folder and BEASTFLOW_METRICS_PORT (as in docker compose)
    folder = tmp_path / "metrics"
    folder.mkdir()
    port = free_port()
    prefix = f"bfobs{uuid.uuid4().hex[:8]}"
    env = subprocess_env() | {
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
        "BEASTFLOW_METRICS_PORT": str(port),
        "BEASTFLOW_METRICS_ADDR": "127.0.0.1",
        "BEASTFLOW_REDIS_PREFIX": prefix,
        "BEASTFLOW_MONITOR_TICK_S": "0.5",
    }
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "beastflow",
        "beat",
        "-l",
        "WARNING",
        "--schedule",
        str(tmp_path / "b"),
    ]
    beat = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        # when: its clock ticks
        deadline = time.monotonic() + 30
        sent = 0.0
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                sent = total(scrape(f"http://127.0.0.1:{port}"), "beastflow_tasks_sent_total")
            if sent > 0:
                break
            assert beat.poll() is None, "beat exited"
            time.sleep(0.25)
        # then: what it published is counted on its own port
        assert sent > 0
    finally:
        stop([beat])
        forget_namespace(prefix)
