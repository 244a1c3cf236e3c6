"""Tasks run on a real worker, in the schema they were sent from."""

from __future__ import annotations

import time
import uuid

import structlog

from beastflow import correlation
from beastflow.redis_client import get_redis, key
from beastflow.tasks import fan_out_to_tenants, tenant_echo_task
from tenants.models import Tenant
from tests.conftest import Persona


def _wait_for(name: str, count: int, timeout_s: float = 20.0) -> dict[bytes, bytes]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen = get_redis().hgetall(name)
        if len(seen) >= count:
            return seen  # type: ignore[return-value]
        time.sleep(0.05)
    return get_redis().hgetall(name)  # type: ignore[return-value]


def test_fan_out_runs_the_task_once_in_every_ready_tenants_schema(
    alice: Persona, charlie: Persona, celery_worker: None
) -> None:
    # given
    token = uuid.uuid4().hex
    correlation.bind("corr-fanout-1")
    ready = set(Tenant.objects.filter(ready=True).exclude(schema_name="public").values_list("schema_name", flat=True))
    # when
    sent = fan_out_to_tenants(tenant_echo_task, token, stagger_s=0)
    # then
    seen = _wait_for(key("echo", token), len(ready))
    structlog.contextvars.clear_contextvars()
    assert sent == len(ready)
    assert {schema.decode() for schema in seen} == ready
    assert {"t_acme", "t_globex"} <= ready
    assert set(seen.values()) == {b"corr-fanout-1"}


def test_fan_out_skips_tenants_whose_migrations_have_not_finished(alice: Persona, charlie: Persona) -> None:
    # given: globex is mid-migration (the flag is rolled back with the test)
    Tenant.objects.filter(slug="globex").update(ready=False)
    sent_to: list[str] = []

    class Recorder:
        def apply_async(self, **_: object) -> None:
            from beastflow.tenancy import current_schema

            sent_to.append(current_schema())

    # when
    fan_out_to_tenants(Recorder(), stagger_s=0)  # type: ignore[arg-type]
    # then
    assert "t_acme" in sent_to
    assert "t_globex" not in sent_to
