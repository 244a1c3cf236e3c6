"""Predictive health against the simulator, with a real web server, worker and beat (docs/observability.md).

A source pushed to by the simulator runs healthy, then its pushes degrade
gradually (the share of dropped events ramps up, then holds). Measured and
printed (pytest -s): false alarms while healthy, when the
`predicted_degradation` failure came, and how long before the monitor's first
switch out of event mode (when it switches within the wait: gap-fill polls
can keep a lossy push stream's health up for a long time).
Asserted only against generous bounds: the figures are measured, not promised.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from engines.models import ModeSwitch, Source
from healing.models import FailureRecord
from simulator.runner import start_in_thread
from tests.conftest import Persona
from tests.stack import free_port

TOKEN = "upstream-token"
HEALTHY_S = 60.0
RAMP_S = 60.0
HOLD_S = 90.0  # at the worst, how long to wait for the monitor's switch


# Slow (2-4 minutes) and, on a loaded 2-core machine, not yet reliable: in one full
# run the drop ramp switched nothing within its 150 s. Run on request.
@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.usefixtures("celery_beat")
def test_a_gradual_degradation_is_predicted_before_the_switch(
    personas: dict[str, Persona], live_server_url: str, django_db_blocker: Any
) -> None:
    from engines import sources

    tenant = personas["alice"].tenant
    port = free_port()
    spec = {
        "name": f"predict-{uuid.uuid4().hex[:8]}",
        "connector": "simulator",
        "config": {
            "poll_url": f"http://127.0.0.1:{port}/changes",
            "snapshot_url": f"http://127.0.0.1:{port}/snapshot",
            "headers": {"Authorization": f"Bearer {TOKEN}"},
            "expected_interval_s": 0.5,
            "timeout_s": 3,
        },
        "poll": {"min_interval_s": 0.5, "max_interval_s": 2},
    }

    def query(read: Any) -> Any:
        with django_db_blocker.unblock(), tenant_context(tenant):
            try:
                return read()
            finally:
                connection.close()

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
        seed=11,
        run_id=uuid.uuid4().hex[:6],
    )

    def predictions() -> list[FailureRecord]:
        return list(
            query(lambda: list(FailureRecord.objects.filter(source_id=source.pk, kind="predicted_degradation")))
        )

    def first_switch_at() -> float | None:
        switch = query(lambda: ModeSwitch.objects.filter(source_id=source.pk).order_by("at").first())
        return None if switch is None else switch.at.timestamp()

    try:
        # given: a healthy stream
        healthy_from = time.time()
        time.sleep(HEALTHY_S)
        false_alarms = sum(f.occurrences for f in predictions())
        switched_while_healthy = first_switch_at()
        # when: pushes degrade gradually, 0 -> 90% dropped over RAMP_S, then held there
        ramp_from = time.time()
        while first_switch_at() is None and time.time() - ramp_from < RAMP_S + HOLD_S:
            drop = min(0.9, 0.9 * (time.time() - ramp_from) / RAMP_S)
            response = httpx.post(
                f"{sim.base_url}/_control/faults",
                json={"drop_rate": round(drop, 2)},
                headers=sim.control_headers,
                timeout=5,
            )
            assert response.status_code == 200
            time.sleep(2)
        switched = first_switch_at()
        found = predictions()
        predicted = min((f.first_seen.timestamp() for f in found), default=None)
        hours = (ramp_from - healthy_from) / 3600
        lead = None if predicted is None or switched is None else switched - predicted
        switch_text = f"+{switched - ramp_from:.1f}s" if switched else f"none within {RAMP_S + HOLD_S:.0f}s"
        print(
            f"\npredictive health on the simulator: {false_alarms} false alarms in {hours * 60:.0f} healthy "
            f"minutes; prediction at +{(predicted or ramp_from) - ramp_from:.1f}s into the ramp "
            f"({found[0].detail if found else None}); first switch at {switch_text}; "
            f"lead time {None if lead is None else round(lead, 1)} s"
        )
        # then (generous): nothing while healthy, and the degradation noticed. Whether the
        # prediction leads depends on the monitor: a first gap it cannot fill can switch the
        # source within seconds, before the trend has the 12 judgements it needs.
        assert switched_while_healthy is None
        assert false_alarms <= 1
        assert predicted is not None or switched is not None
    finally:
        sim.stop()
        with django_db_blocker.unblock(), tenant_context(tenant):
            found_source = Source.objects.filter(pk=source.pk).first()
            if found_source is not None:
                sources.source_delete(source=found_source)
