"""The hybrid flow end to end: real web server, worker, beat and simulator.

Each test drives the simulator's faults through its control API and watches
the source through the database, the way an operator would through the API.
Timings are printed (pytest -s) and asserted only against generous bounds:
the figures themselves are measured, not promised, by these tests.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from engines.models import ModeSwitch, Record, Source
from simulator.runner import SimulatorHandle, start_in_thread
from tests.conftest import Persona
from tests.stack import free_port

TOKEN = "upstream-token"
pytestmark = pytest.mark.usefixtures("celery_beat")


@dataclass
class World:
    tenant: Any
    source_id: int
    sim: SimulatorHandle
    blocker: Any

    def control(self, path: str, body: dict[str, Any]) -> None:
        response = httpx.post(
            f"{self.sim.base_url}/_control/{path}", json=body, headers=self.sim.control_headers, timeout=5
        )
        assert response.status_code == 200, response.text

    def query(self, read: Callable[[], Any]) -> Any:
        with self.blocker.unblock(), tenant_context(self.tenant):
            try:
                return read()
            finally:
                connection.close()

    def mode(self) -> str:
        return str(self.query(lambda: Source.objects.values_list("mode", flat=True).get(pk=self.source_id)))

    def wait_mode(self, mode: str, timeout_s: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.mode() == mode:
                return time.monotonic() - started
            time.sleep(0.1)
        raise AssertionError(f"not in {mode} after {timeout_s}s (in {self.mode()}); {self.diagnosis()}")

    def diagnosis(self) -> str:
        from engines.models import PollRun

        runs = self.query(
            lambda: list(
                PollRun.objects.filter(source_id=self.source_id)
                .order_by("-started_at")
                .values_list("status", "trigger", "caught_up", "events", "new_events", "error_kind", "error")[:5]
            )
        )
        source = self.query(
            lambda: Source.objects.values("hysteresis_state", "next_poll_at", "poll_lease_until").get(pk=self.source_id)
        )
        return f"polls {runs}; source {source}"

    def upstream(self) -> dict[str, tuple[int, str]]:
        records: dict[str, tuple[int, str]] = {}
        token: str | None = None
        while True:
            params = {"limit": 1000} | ({"page_token": token} if token else {})
            page = httpx.get(
                f"{self.sim.base_url}/snapshot", params=params, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
            ).json()
            for item in page["records"]:
                from engines.ingest.plan import record_hash

                records[item["key"]] = (item["version"], record_hash(item["data"]))
            token = page["next_page_token"]
            if not token:
                return records

    def local(self) -> dict[str, tuple[int, str]]:
        rows = self.query(
            lambda: list(
                Record.objects.filter(source_id=self.source_id, deleted=False).values_list("key", "version", "hash")
            )
        )
        return {key: (version, digest) for key, version, digest in rows}

    def converge(self, timeout_s: float) -> int:
        """Stop traffic, then wait until every upstream record is here; returns how many still differ."""
        self.control("traffic", {"mutations_per_s": 0})
        upstream = self.upstream()
        deadline = time.monotonic() + timeout_s
        while True:
            local = self.local()
            differing = sum(1 for key, value in upstream.items() if local.get(key) != value)
            differing += sum(1 for key in local if key not in upstream)
            if differing == 0 or time.monotonic() > deadline:
                return differing
            time.sleep(0.2)

    def switches(self) -> list[tuple[str, str]]:
        return self.query(
            lambda: list(
                ModeSwitch.objects.filter(source_id=self.source_id)
                .order_by("at", "id")
                .values_list("from_mode", "to_mode")
            )
        )


@pytest.fixture
def world(personas: dict[str, Persona], live_server_url: str, django_db_blocker: Any) -> Iterator[World]:
    from engines import sources

    tenant = personas["alice"].tenant
    port = free_port()
    spec = {
        "name": f"e2e-{uuid.uuid4().hex[:8]}",
        "connector": "simulator",
        "config": {
            "poll_url": f"http://127.0.0.1:{port}/changes",
            "snapshot_url": f"http://127.0.0.1:{port}/snapshot",
            "headers": {"Authorization": f"Bearer {TOKEN}"},
            "expected_interval_s": 0.5,
            "timeout_s": 3,
        },
        "hysteresis": {
            "fail_threshold": 2,
            "recover_threshold": 3,
            "min_dwell_s": 3,
            "max_dwell_s": 30,
            "validation_window_s": 3,
        },
        "poll": {"min_interval_s": 0.5, "max_interval_s": 2},
        # A tight silence judgement: the rhythm is known (heartbeats every 0.25 s).
        "health": {"silence_tolerance": 1.5, "min_silence_s": 0.5},
    }
    with django_db_blocker.unblock(), tenant_context(tenant):
        source, secret = sources.source_create(spec=sources.parse_spec(spec))
    sim = start_in_thread(
        port=port,
        ingest_url=f"{live_server_url}/api/v1/sources/{source.pk}/events",
        webhook_secret=secret,
        token=TOKEN,
        mutations_per_s=8.0,
        heartbeat_s=0.25,
        key_space=60,
        seed=7,
        run_id=uuid.uuid4().hex[:6],
    )
    world = World(tenant=tenant, source_id=source.pk, sim=sim, blocker=django_db_blocker)
    try:
        yield world
    finally:
        sim.stop()
        with django_db_blocker.unblock(), tenant_context(tenant):
            found = Source.objects.filter(pk=source.pk).first()
            if found is not None:
                sources.source_delete(source=found)


def test_outage_falls_back_to_polling_and_recovery_returns_to_event_with_nothing_lost(world: World) -> None:
    # given: a healthy stream
    time.sleep(2)
    assert world.mode() == "event"
    # when: the upstream stops pushing (its feed still answers)
    world.control("faults", {"outage": "push"})
    to_polling = world.wait_mode("polling", timeout_s=30)
    # and: it comes back
    world.control("faults", {"outage": "none"})
    to_event = world.wait_mode("event", timeout_s=60)
    # then
    lost = world.converge(timeout_s=20)
    print(f"\noutage -> polling in {to_polling:.1f}s; recovery -> event in {to_event:.1f}s; lost {lost}")
    assert lost == 0
    assert world.switches()[:4] == [
        ("event", "hybrid"),
        ("hybrid", "polling"),
        ("polling", "hybrid"),
        ("hybrid", "event"),
    ]


def test_flapping_stays_within_the_policys_switch_bound(world: World) -> None:
    # given: default flap policy, 4 switches in 300 s, so at most 6 in any window
    time.sleep(1)
    # when: the push stream flaps for 25 s
    world.control("faults", {"flap_up_s": 2.0, "flap_down_s": 2.0, "flap_target": "push"})
    time.sleep(25)
    world.control("faults", {"flap_up_s": 0, "flap_down_s": 0})
    # then
    switches = world.switches()
    lost = world.converge(timeout_s=20)
    print(f"\nflapping 25s: {len(switches)} switches {switches}; lost {lost}")
    assert len(switches) <= 6
    assert lost == 0


def test_random_drops_leave_gaps_that_are_filled(world: World) -> None:
    world.control("faults", {"drop_rate": 0.3})
    time.sleep(8)
    world.control("faults", {"drop_rate": 0.0})
    lost = world.converge(timeout_s=30)
    print(f"\n30% drops: lost {lost}, switches {world.switches()}")
    assert lost == 0


def test_duplicates_and_reordering_make_exactly_one_change_per_version(world: World) -> None:
    world.control("faults", {"duplicate_rate": 0.3, "reorder_window": 5})
    time.sleep(8)
    world.control("faults", {"duplicate_rate": 0.0, "reorder_window": 0})
    lost = world.converge(timeout_s=30)

    def repeated() -> list[Any]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT key, version, count(*) FROM engines_change WHERE source_id = %s "
                "GROUP BY key, version HAVING count(*) > 1",
                [world.source_id],
            )
            return list(cursor.fetchall())

    assert world.query(repeated) == []
    assert lost == 0
