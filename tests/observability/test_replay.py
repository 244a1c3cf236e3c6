"""Failure recordings and their replay: a recorded outage replays to the same switches.

The outage is driven through the real monitor (engines.judge.monitor_source,
the batched judge, the flight recorder) on a clock of the test's own, as in
tests/engines/test_monitor.py: the push goes silent, a poll catches up, the
push comes back, polls validate it. The recording is then made and downloaded
through the API and replayed by `manage.py replay_failure`.
"""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import tenant_context

from beastflow.redis_client import get_redis, key
from engines import flight
from engines.judge import monitor_source
from engines.models import ModeSwitch, PollRun, Source, StreamState
from healing.models import FailureRecord
from observability.models import FailureRecording
from observability.recording import record_due
from observability.replay import actual_switches, compare, replay
from tests.conftest import Persona
from tests.factories import make_source

T0 = time.time()


@pytest.fixture(autouse=True)
def _clock_starts_with_the_test() -> None:
    """The test's clock starts when the test does, not when the module was imported: healing
    stamps the failure with the real time, and the tick matches it to the switch within 60 s
    (in the full suite the module is imported minutes before this test runs)."""
    global T0
    T0 = time.time()


def at(offset: float) -> datetime:
    return datetime.fromtimestamp(T0 + offset, tz=UTC)


def _clear_monitor_memory() -> None:
    client = get_redis()
    for pattern in ("monitor", "gapfill", "flight"):
        for name in client.scan_iter(match=key(pattern, "*"), count=1000):
            client.delete(name)
    flight.flush()


def _outage_and_recovery(persona: Persona) -> Source:
    """event -> hybrid -> polling -> hybrid -> event, judged by the monitor on the test's clock."""
    _clear_monitor_memory()
    with tenant_context(persona.tenant):
        source, _ = make_source(
            "replayed",
            config={"poll_url": "http://127.0.0.1:9/changes", "expected_interval_s": 1.0},
            hysteresis={"fail_threshold": 2, "recover_threshold": 2, "min_dwell_s": 5, "validation_window_s": 3},
        )
        Source.objects.filter(pk=source.pk).update(created_at=at(-100))

        def pushed(offset: float) -> None:
            StreamState.objects.filter(source=source).update(last_push_at=at(offset), last_heartbeat_at=at(offset))

        def polled(offset: float) -> None:
            PollRun.objects.create(
                source=source, trigger="schedule", status="succeeded", started_at=at(offset), finished_at=at(offset),
                caught_up=True,
            )  # fmt: skip

        def tick(offset: float) -> str:
            monitor_source(Source.objects.get(pk=source.pk), now=T0 + offset)
            return Source.objects.get(pk=source.pk).mode

        for second in range(3):  # healthy
            pushed(second)
            assert tick(second + 0.5) == "event"
        second = 3
        while tick(second) == "event":  # silent
            second += 1
        polled(second + 0.5)
        assert tick(second + 1) == "polling"
        second += 2
        while tick(second) == "polling":  # the push is back
            pushed(second)
            second += 1
            assert second < 80, "never left polling"
        recovering = second
        mode = "hybrid"
        for offset in range(1, 6):
            pushed(recovering + offset)
            polled(recovering + offset - 0.5)
            mode = tick(recovering + offset)
        assert mode == "event"
        return Source.objects.get(pk=source.pk)


def _download(persona: Persona, failure_id: int, tmp_path: Path) -> Path:
    response = persona.client().get(f"/api/v1/failures/{failure_id}/recording")
    assert response.status_code == 200, response.content
    assert "attachment" in response["Content-Disposition"]
    path = tmp_path / "recording.json"
    path.write_bytes(response.content)
    return path


def test_a_recorded_outage_replays_to_the_same_switches(alice: Persona, tmp_path: Path) -> None:
    # given: an outage and its recovery, and the stream failure it raised
    source = _outage_and_recovery(alice)
    with tenant_context(alice.tenant):
        failure = FailureRecord.objects.filter(source=source).order_by("first_seen").first()
        assert failure is not None
        happened = list(ModeSwitch.objects.filter(source=source).order_by("at", "id"))
    assert [s.transition for s in happened] == ["degrade", "caught_up", "recover", "validated"]
    # when: recorded (a window wide enough for the test's clock) and downloaded
    answer = alice.client().post(
        f"/api/v1/failures/{failure.pk}/recording", {"before_s": 900, "after_s": 900}, format="json"
    )
    assert answer.status_code == 201, answer.content
    assert answer.json()["judgements"] > 10 and answer.json()["truncated"] is False
    path = _download(alice, failure.pk, tmp_path)
    recording = json.loads(path.read_text())
    # then: the pure replay makes the monitor's switches, at the same judgements
    result = replay(recording)
    assert [s.transition for s in result.switches] == ["degrade", "caught_up", "recover", "validated"]
    assert result.outside_changes == ()
    judged = [step.t for step in result.steps]
    comparison = compare(result.switches, actual_switches(recording), within=(judged[0], judged[-1]), tolerance_s=0.001)
    assert comparison.matched, comparison.differences
    # and the command says so
    out = io.StringIO()
    call_command("replay_failure", str(path), "--steps", stdout=out)
    printed = out.getvalue()
    assert "same switches (4)" in printed
    assert "event -> hybrid  (degrade)" in printed and "hybrid -> event  (validated)" in printed
    assert printed.count("<- switch") == 4 and " bad  -> hybrid  <- switch" in printed
    # and the recording holds the traffic: the polls with what they answered
    assert {poll["caught_up"] for poll in recording["polls"]} == {True} and len(recording["polls"]) >= 4
    assert [s["transition"] for s in recording["switches"]] == ["degrade", "caught_up", "recover", "validated"]


def test_another_policy_replays_to_other_switches_and_the_command_says_they_differ(
    alice: Persona, tmp_path: Path
) -> None:
    # given
    source = _outage_and_recovery(alice)
    with tenant_context(alice.tenant):
        failure = FailureRecord.objects.filter(source=source).first()
    assert failure is not None
    alice.client().post(f"/api/v1/failures/{failure.pk}/recording", {"before_s": 900, "after_s": 900}, format="json")
    path = _download(alice, failure.pk, tmp_path)
    # when: a source that needs 50 bad verdicts to leave event mode
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("replay_failure", str(path), "--policy", '{"fail_threshold": 50}', "--json", stdout=out)
    # then
    assert exited.value.code == 1
    result = json.loads(out.getvalue())
    assert result["matched"] is False and result["replayed"] == []
    assert len(result["actual"]) == 4 and result["differences"][0].startswith("#1: only the monitor made event")


def test_a_degrading_switch_is_recorded_by_the_tick_once_its_window_has_passed(alice: Persona) -> None:
    # given: the outage marked its degradation for recording
    source = _outage_and_recovery(alice)
    due = get_redis().zrange(key(*flight.DUE_KEY_PARTS), 0, -1)
    assert any(f":{source.pk}:" in member.decode() for member in due)
    # and a mark left by a tenant deleted since (its schema is gone), due first
    get_redis().zadd(key(*flight.DUE_KEY_PARTS), {"t_gone_since:1:1.0": 0})
    # when: the tick comes after the window (180 s after the switch)
    recorded = record_due(now=time.time() + 1000)
    # then: the gone tenant's mark fails alone
    assert recorded >= 1
    with tenant_context(alice.tenant):
        recording = FailureRecording.objects.get(source_id=source.pk)
        assert recording.failure.source_id == source.pk and recording.judgements > 5
        assert replay(recording.data).switches[0].transition == "degrade"
    assert not any(f":{source.pk}:" in m.decode() for m in get_redis().zrange(key(*flight.DUE_KEY_PARTS), 0, -1))


def test_a_file_that_is_not_a_recording_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text('{"format": "something-else"}')
    with pytest.raises(CommandError, match="not a failure recording") as refused:
        call_command("replay_failure", str(path))
    assert refused.value.returncode == 2  # the exit status from the command line


def test_another_tenants_failure_has_no_recording_to_read_or_make(alice: Persona, charlie: Persona) -> None:
    # given: a failure of acme's
    with tenant_context(alice.tenant):
        source, _ = make_source("failing")
        failure = FailureRecord.objects.create(
            source=source, kind="stream_silent", fingerprint="replay-isolation", first_seen=at(0), last_seen=at(0)
        )
    # when / then: globex sees nothing of it, and cannot record it
    assert charlie.client().get(f"/api/v1/failures/{failure.pk}/recording").status_code == 404
    assert charlie.client().post(f"/api/v1/failures/{failure.pk}/recording", {}, format="json").status_code == 404
    with tenant_context(alice.tenant):
        assert not FailureRecording.objects.exists()
    # acme: not recorded yet is a 404 saying how; a window over an hour is a 400 naming the field
    missing = alice.client().get(f"/api/v1/failures/{failure.pk}/recording")
    assert missing.status_code == 404 and "POST" in missing.json()["detail"]
    refused = alice.client().post(f"/api/v1/failures/{failure.pk}/recording", {"before_s": 7200}, format="json")
    assert refused.status_code == 400 and [e["field"] for e in refused.json()["errors"]] == ["before_s"]
    made = alice.client().post(f"/api/v1/failures/{failure.pk}/recording", {}, format="json")
    assert made.status_code == 201 and made.json()["judgements"] == 0
    assert alice.client().get(f"/api/v1/failures/{failure.pk}/recording").json()["failure"]["id"] == failure.pk


def test_the_tenant_admin_lists_recordings_read_only(alice: Persona) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    # given: a recording of an acme failure
    with tenant_context(alice.tenant):
        source, _ = make_source("recorded")
        failure = FailureRecord.objects.create(
            source=source, kind="stream_silent", fingerprint="replay-admin", first_seen=at(0), last_seen=at(0)
        )
    assert alice.client().post(f"/api/v1/failures/{failure.pk}/recording", {}, format="json").status_code == 201
    staff = get_user_model().objects.create_user("olga-rec", password="x", is_staff=True, is_superuser=True)
    client = Client(HTTP_HOST=str(alice.tenant.domains.get(is_primary=True).domain))
    client.force_login(staff)
    # when
    tenant = connection.tenant  # type: ignore[attr-defined]
    try:
        page = client.get("/admin/observability/failurerecording/")
    finally:
        connection.set_tenant(tenant)  # type: ignore[attr-defined]
    # then
    with tenant_context(alice.tenant):
        recording = FailureRecording.objects.get(failure=failure)
    assert page.status_code == 200
    assert f"/admin/observability/failurerecording/{recording.pk}/change/" in page.content.decode()
    assert "Add failure recording" not in page.content.decode()
