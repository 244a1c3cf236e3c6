"""The demo's simulated sources (engines.demo) and `manage.py simulate`.

Run in acme (alice's tenant) rather than a `demo` tenant: creating a tenant
migrates a schema, which is slow, and the service code only needs a tenant.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable, Iterator

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django_tenants.utils import tenant_context

from engines import demo, sources
from engines.models import Record, Source, StreamState
from simulator.runner import SimulatorHandle
from tenants.models import Tenant
from tests.conftest import Persona


def free_base_port() -> int:
    """A port with the ones after it free too (the demo takes one per source, in a row)."""
    for _ in range(50):
        base = random.randint(20_000, 60_000)
        if not demo.ports_in_use(demo.demo_ports(base)):
            return base
    raise RuntimeError("no free ports in a row")


def wait_for(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(0.1)


def test_ensuring_the_demo_sources_twice_keeps_the_same_four(in_acme: Tenant) -> None:
    # when
    first = demo.ensure_demo_sources(base_port=9101)
    updated_at = dict(Source.objects.values_list("name", "updated_at"))
    second = demo.ensure_demo_sources(base_port=9101)
    # then
    assert [u.name for u in first] == ["demo-steady", "demo-outage", "demo-flaky", "demo-github"]
    assert first == second  # same ids, ports, upstream tokens and webhook secrets
    assert Source.objects.filter(name__startswith="demo-").count() == 4
    assert [u.port for u in first] == [9101, 9102, 9103, 9104]
    assert dict(Source.objects.values_list("name", "updated_at")) == updated_at  # the second call wrote nothing


def test_the_github_demo_source_is_made_from_the_preset_and_pushes_native_webhooks(in_acme: Tenant) -> None:
    # when
    github = demo.ensure_demo_sources(base_port=9101)[3]
    # then: what a tenant gives for a real repository, the rest from the preset
    source = Source.objects.get(pk=github.source_id)
    assert (source.preset, source.connector, source.push["scheme"]) == ("github-issues", "rest", "github")
    assert source.config["base_url"].rstrip("/") == "http://127.0.0.1:9104"
    assert source.config["list_path"] == "/repos/{owner}/{repo}/issues"
    assert (source.config["owner"], source.config["repo"]) == (demo.GITHUB_OWNER, demo.GITHUB_REPO)
    assert source.config["headers"]["Authorization"] == f"Bearer {github.token}"
    assert source.poll["audit_interval_s"] == 10
    # and its simulator is a GitHub of that repository, signing with the source's push secret
    assert github.profile == "github"
    assert github.profile_options["owner"] == demo.GITHUB_OWNER
    assert github.webhook_secret == sources.push_secret(source)
    assert github.scenario.name == "demo-github.yaml" and github.scenario.exists()


def test_a_demo_source_is_a_simulator_source_behind_a_bearer_token(in_acme: Tenant) -> None:
    # when
    outage = demo.ensure_demo_sources(base_port=9101)[1]
    # then
    source = Source.objects.get(pk=outage.source_id)
    assert source.connector == "simulator"
    assert source.config["poll_url"] == "http://127.0.0.1:9102/changes"
    assert source.config["snapshot_url"] == "http://127.0.0.1:9102/snapshot"
    assert source.config["headers"] == {"Authorization": f"Bearer {outage.token}"}
    assert source.config["expected_interval_s"] == demo.HEARTBEAT_S
    assert source.hysteresis["min_dwell_s"] == 15 and source.hysteresis["validation_window_s"] == 10
    assert outage.scenario.name == "demo-outage.yaml" and outage.scenario.exists()
    assert outage.webhook_secret == sources.webhook_secret(source)


def test_a_new_base_port_moves_the_demo_upstreams_without_new_sources(in_acme: Tenant) -> None:
    # given
    before = demo.ensure_demo_sources(base_port=9101)
    # when
    after = demo.ensure_demo_sources(base_port=9201)
    # then
    assert [u.source_id for u in after] == [u.source_id for u in before]
    assert [u.token for u in after] == [u.token for u in before]
    assert [u.port for u in after] == [9201, 9202, 9203, 9204]
    assert [u.webhook_secret for u in after] == [u.webhook_secret for u in before]
    assert Source.objects.get(pk=after[0].source_id).config["poll_url"] == "http://127.0.0.1:9201/changes"


def test_resetting_the_demo_streams_forgets_the_previous_simulator_run(alice: Persona) -> None:
    # given: a previous run delivered seqs up to 500 and a record at version 9
    with tenant_context(alice.tenant):
        steady = demo.ensure_demo_sources(base_port=9101)[0]
    body = {"events": [{"id": "old-1", "type": "upsert", "key": "rec-000001", "version": 9, "data": {}, "seq": 500}]}
    response = alice.client().post(f"/api/v1/sources/{steady.source_id}/events", body, format="json")
    assert response.status_code == 202
    with tenant_context(alice.tenant):  # the request left the connection on the public schema
        assert StreamState.objects.get(source_id=steady.source_id).contiguous_seq == 500
        # when
        demo.reset_demo_streams(source_ids=[steady.source_id])
        stream = StreamState.objects.get(source_id=steady.source_id)
        records = Record.objects.filter(source_id=steady.source_id).count()
    # then: the new run's seq 1 and version 1 will count
    assert (stream.contiguous_seq, stream.highest_seq, stream.upstream_seq, stream.pending_seqs) == (
        None,
        None,
        None,
        [],
    )
    assert records == 0
    assert stream.last_push_at is not None  # what BeastFlow saw of the stream stays


def test_simulate_says_in_one_line_that_its_port_is_taken() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        # when / then
        with pytest.raises(CommandError, match=f"^port {port} is in use"):
            call_command("simulate", "--port", str(port))


def test_simulate_refuses_an_unknown_scenario_in_one_line() -> None:
    with pytest.raises(CommandError, match=r"no scenario 'nope' \(bundled: .*demo-outage"):
        call_command("simulate", "--port", "0", "--scenario", "nope")


@pytest.fixture
def committed_demo(
    personas: dict[str, Persona], django_db_blocker: pytest.FixtureRequest
) -> Iterator[list[demo.Upstream]]:
    """The demo sources committed in acme (the live server must see them), removed after."""
    tenant = personas["alice"].tenant
    with django_db_blocker.unblock(), tenant_context(tenant):  # type: ignore[attr-defined]
        upstreams = demo.ensure_demo_sources(base_port=free_base_port())
        demo.reset_demo_streams(source_ids=[u.source_id for u in upstreams])
    try:
        yield upstreams
    finally:
        with django_db_blocker.unblock(), tenant_context(tenant):  # type: ignore[attr-defined]
            for source in Source.objects.filter(pk__in=[u.source_id for u in upstreams]):
                sources.source_delete(source=source)


def test_a_demo_simulator_pushes_signed_events_that_ingest_accepts(
    live_server_url: str,
    committed_demo: list[demo.Upstream],
    personas: dict[str, Persona],
    django_db_blocker: pytest.FixtureRequest,
) -> None:
    # given
    steady = committed_demo[0]
    handle: SimulatorHandle = demo.start_simulator(steady, web_url=live_server_url)
    try:
        # when: its first records (seeded at start) and heartbeats arrive
        def arrived() -> bool:
            with django_db_blocker.unblock(), tenant_context(personas["alice"].tenant):  # type: ignore[attr-defined]
                records = Record.objects.filter(source_id=steady.source_id).count()
                stream = StreamState.objects.get(source_id=steady.source_id)
            return records >= demo.INITIAL_RECORDS and stream.last_heartbeat_at is not None

        wait_for(arrived, timeout=10)
    finally:
        handle.stop()
    # then: every push was accepted (signed with the source's secret), none failed
    push = handle.sim.push
    assert push.ok > 0 and push.failed == 0, push.last_error
    with django_db_blocker.unblock(), tenant_context(personas["alice"].tenant):  # type: ignore[attr-defined]
        stream = StreamState.objects.get(source_id=steady.source_id)
    assert stream.contiguous_seq is not None and stream.contiguous_seq >= demo.INITIAL_RECORDS


def test_the_github_demo_simulator_pushes_webhooks_that_ingest_accepts(
    live_server_url: str,
    committed_demo: list[demo.Upstream],
    personas: dict[str, Persona],
    django_db_blocker: pytest.FixtureRequest,
) -> None:
    # given
    github = committed_demo[3]
    handle: SimulatorHandle = demo.start_simulator(github, web_url=live_server_url)
    tenant = personas["alice"].tenant

    def stored() -> set[str]:
        with django_db_blocker.unblock(), tenant_context(tenant):  # type: ignore[attr-defined]
            return set(Record.objects.filter(source_id=github.source_id).values_list("key", flat=True))

    try:
        # when: the issues seeded at start arrive as signed `issues` webhooks, and the
        # pusher's first ping (posted after that first batch) has been answered
        wait_for(lambda: len(stored()) >= demo.INITIAL_RECORDS and handle.sim.push.heartbeats >= 1, timeout=15)
    finally:
        handle.stop()
    # then: every delivery was accepted, each record keyed by its issue's id
    push = handle.sim.push
    assert push.ok > 0 and push.failed == 0, push.last_error
    assert push.heartbeats >= 1  # the ping, answered 2xx and ignored
    issues = {handle.sim.profile.upstream_key(r.key) for r in handle.dataset.records()}
    assert stored() <= issues and len(stored()) >= demo.INITIAL_RECORDS


def test_a_demo_secret_stored_under_another_key_is_reissued_not_fatal(in_acme: object) -> None:
    from cryptography.fernet import Fernet

    from beastflow import crypto
    from engines import demo, sources
    from engines.models import Source
    from tests.factories import make_source

    # given: a source whose secret was encrypted by another checkout's key
    source, _ = make_source("demo-elsewhere")
    foreign = Fernet(Fernet.generate_key()).encrypt(b"whsec_from_another_clone").decode()
    Source.objects.filter(pk=source.pk).update(webhook_secret_encrypted=foreign)
    source.refresh_from_db()
    # when
    secret = demo._readable_secret(source)
    # then: a new secret, stored so that this checkout reads it back
    source.refresh_from_db()
    assert secret != "whsec_from_another_clone"
    assert sources.webhook_secret(source) == secret == crypto.decrypt(source.webhook_secret_encrypted)


def test_a_demo_simulator_guards_its_control_api_with_the_demo_token(committed_demo: list[demo.Upstream]) -> None:
    import httpx

    handle = demo.start_simulator(committed_demo[0], web_url="http://127.0.0.1:9", control_token="demo-ctl")
    try:
        url = f"{handle.base_url}/_control/state"
        assert httpx.get(url, timeout=5).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer demo-ctl"}, timeout=5).status_code == 200
    finally:
        handle.stop()


def test_the_demo_writes_its_control_token_for_the_operator_readable_by_the_owner_only(
    tmp_path: object, settings: object
) -> None:
    from pathlib import Path

    from engines.management.commands.simulate import _write_control_token

    settings.STATE_DIR = tmp_path  # type: ignore[attr-defined]
    path = _write_control_token("tok-1")
    assert path == Path(str(tmp_path)) / "simulator-control-token"
    assert path.read_text() == "tok-1\n"
    assert path.stat().st_mode & 0o777 == 0o600
