"""Simulator scenarios end to end: RCA names the known cause, safe ones heal alone, risky ones ask.

Real web server, worker, beat and simulator. By default two scenarios run
(an outage that heals alone, a 401 that must wait for an operator);
`HEALING_SCENARIOS=all` (bench/healing.py) plays all seven and, with
`HEALING_BENCH_OUT=<file>`, writes every outcome there.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from simulator.runner import SimulatorHandle, start_in_thread
from tests.conftest import Persona
from tests.healing.scenarios import BY_NAME, SCENARIOS, SOURCE_TUNING, Outcome, play
from tests.stack import free_port

TOKEN = "upstream-token"
pytestmark = pytest.mark.usefixtures("celery_beat")

_selected = os.environ.get("HEALING_SCENARIOS", "outage,401")
NAMES = [s.name for s in SCENARIOS] if _selected == "all" else [n.strip() for n in _selected.split(",") if n.strip()]
RESULTS: list[Outcome] = []


@dataclass
class World:
    tenant: Any
    source_id: int
    sim: SimulatorHandle
    blocker: Any
    persona: Persona
    server: str

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


@pytest.fixture
def world(personas: dict[str, Persona], live_server_url: str, django_db_blocker: Any) -> Iterator[World]:
    from engines import sources

    persona = personas["alice"]
    port = free_port()
    spec = {
        "name": f"heal-{uuid.uuid4().hex[:8]}",
        "connector": "simulator",
        "config": {
            "poll_url": f"http://127.0.0.1:{port}/changes",
            "snapshot_url": f"http://127.0.0.1:{port}/snapshot",
            "headers": {"Authorization": f"Bearer {TOKEN}"},
            "expected_interval_s": 0.5,
            "timeout_s": 3,
        },
        **SOURCE_TUNING,
    }
    with django_db_blocker.unblock(), tenant_context(persona.tenant):
        source, secret = sources.source_create(spec=sources.parse_spec(spec))
    sim = start_in_thread(
        port=port,
        ingest_url=f"{live_server_url}/api/v1/sources/{source.pk}/events",
        webhook_secret=secret,
        token=TOKEN,
        mutations_per_s=6.0,
        heartbeat_s=0.25,
        key_space=60,
        seed=11,
        run_id=uuid.uuid4().hex[:6],
    )
    try:
        yield World(persona.tenant, source.pk, sim, django_db_blocker, persona, live_server_url)
    finally:
        sim.stop()
        with django_db_blocker.unblock(), tenant_context(persona.tenant):
            from engines.models import Source

            found = Source.objects.filter(pk=source.pk).first()
            if found is not None:
                sources.source_delete(source=found)


@pytest.mark.parametrize("name", NAMES)
def test_scenario_is_explained_and_healed_or_held_for_an_operator(world: World, name: str) -> None:
    # given
    scenario = BY_NAME[name]
    # when
    outcome = play(world, scenario)
    RESULTS.append(outcome)
    _write_results()
    print(f"\n{name}: {outcome.as_dict()}")
    # then: the right cause, with evidence
    assert outcome.category == scenario.cause, outcome.as_dict()
    assert outcome.evidence
    if scenario.needs_person:
        # the risky action waits: nothing ran; an operator rejects it and it never runs
        waiting = [a for a in outcome.actions if a["status"] in ("awaiting_approval", "escalated")]
        assert waiting and not outcome.without_person, outcome.as_dict()
        assert all(a["status"] != "running" or a["risk"] == "low" for a in outcome.actions)
        _operator_rejects(world)
    else:
        assert outcome.without_person, outcome.as_dict()
    if scenario.cause == "flapping":
        _assert_contained_then_back_on_push(outcome)


# Seqs the upstream may be ahead by when the sweep looks: about two seconds of the simulator's 6 mutations/s.
IN_FLIGHT_SEQS = 12


def _assert_contained_then_back_on_push(outcome: Outcome) -> None:
    """Healed flapping: held in polling with the data whole, then one clean way back to event mode."""
    flaps = [f for f in outcome.failures if f["kind"] == "flapping"]
    assert flaps, outcome.as_dict()
    for flap in flaps:
        resolution = flap["resolution"]
        assert flap["resolved_by"] == "recovered" and resolution, flap
        # contained: the hold kept it in polling, then polling -> hybrid -> event, validated
        assert resolution["held_in_polling_s"] > 0, flap
        assert resolution["path_back"] == ["hybrid:recover", "event:validated"], flap
        # no data lost: no hole, caught up with the upstream
        seq = resolution["seq"]
        assert seq["contiguous"] == seq["highest"] >= seq["upstream"] - IN_FLIGHT_SEQS, flap
    assert outcome.source["mode"] == "event", outcome.source


def _operator_rejects(world: World) -> None:
    from healing.models import HealingAction

    ids = world.query(
        lambda: list(
            HealingAction.objects.filter(
                source_id=world.source_id, status__in=["awaiting_approval", "escalated"]
            ).values_list("pk", flat=True)
        )
    )
    for action_id in ids:
        response = httpx.post(
            f"{world.server}/api/v1/healing-actions/{action_id}/reject",
            json={"reason": "fixing the upstream by hand"},
            headers={"Authorization": f"Bearer {world.persona.api_key}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        assert response.json()["decided_by"].startswith("api_key:")
    statuses = world.query(lambda: set(HealingAction.objects.filter(pk__in=ids).values_list("status", flat=True)))
    assert statuses <= {"rejected"}


def _write_results() -> None:
    out = os.environ.get("HEALING_BENCH_OUT")
    if out:
        with open(out, "w", encoding="utf-8") as handle:
            json.dump([r.as_dict() for r in RESULTS], handle, indent=2, default=str)
