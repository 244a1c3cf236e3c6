from __future__ import annotations

from django.test import Client
from django.utils import timezone

from console.models import OperatorAction
from engines.models import HealthSample, ModeSwitch, Source
from healing.models import FailureRecord
from tenants.models import Tenant
from tests.factories import make_source


def test_the_overview_lists_every_source_with_its_mode_and_health(in_acme: Tenant, acme_console: Client) -> None:
    # given
    source, _ = make_source("orders")
    Source.objects.filter(pk=source.pk).update(mode="polling", health_score=35)
    # when
    body = acme_console.get("/").content.decode()
    # then
    assert f'data-source-id="{source.pk}"' in body
    assert "Polling" in body
    assert "35" in body and "bad" in body  # a word beside the colour


def test_the_overview_says_what_to_do_when_there_is_no_source(in_acme: Tenant, acme_console: Client) -> None:
    body = acme_console.get("/").content.decode()
    assert "No sources yet" in body
    assert "/api/v1/sources" in body


def test_the_source_page_shows_switches_with_reason_and_signals(in_acme: Tenant, acme_console: Client) -> None:
    # given
    source, _ = make_source("orders")
    ModeSwitch.objects.create(
        source=source,
        from_mode="event",
        to_mode="hybrid",
        transition="degrade",
        reason="3 bad verdicts in a row: push silent for 12 s",
        signals={"health": {"score": 20}},
        at=timezone.now(),
        correlation_id="corr-1",
    )
    HealthSample.objects.create(source=source, at=timezone.now(), score=20, verdict="bad", mode="hybrid")
    # when
    response = acme_console.get(f"/sources/{source.pk}/")
    series = acme_console.get(f"/sources/{source.pk}/samples.json").json()
    # then
    body = response.content.decode()
    assert response.status_code == 200
    assert "push silent for 12 s" in body
    assert "?correlation=corr-1" in body
    assert series["score"] == [20]
    assert series["switches"][0]["to"] == "hybrid"


def test_another_tenants_source_is_not_found(in_acme: Tenant, acme_console: Client) -> None:
    assert acme_console.get("/sources/999999999/").status_code == 404


def test_the_audit_trail_merges_kinds_and_filters_by_correlation_id(in_acme: Tenant, acme_console: Client) -> None:
    # given
    source, _ = make_source("orders")
    now = timezone.now()
    ModeSwitch.objects.create(
        source=source, from_mode="event", to_mode="hybrid", reason="silent", at=now, correlation_id="corr-A"
    )
    FailureRecord.objects.create(
        source=source, kind="stream_silent", fingerprint="f1", first_seen=now, last_seen=now, correlation_id="corr-A"
    )
    OperatorAction.objects.create(actor="alice", action="pause", source=source, reason="upstream maintenance")
    # when
    everything = acme_console.get("/audit/").content.decode()
    linked = acme_console.get("/audit/?correlation=corr-A").content.decode()
    operators = acme_console.get("/audit/?kind=operator").content.decode()
    # then
    assert "silent" in everything and "Stream silent" in everything and "upstream maintenance" in everything
    assert "Stream silent" in linked and "upstream maintenance" not in linked
    assert "upstream maintenance" in operators and "Stream silent" not in operators


def test_the_audit_trail_tolerates_junk_filters(in_acme: Tenant, acme_console: Client) -> None:
    assert acme_console.get("/audit/?source=abc&window=forever&kind=nope").status_code == 200


def test_a_source_polled_past_its_last_heartbeat_is_not_shown_ahead_of_its_upstream(in_acme: Tenant) -> None:
    from console.selectors import source_rows
    from engines.models import StreamState

    # given: push (and its heartbeats) stopped at seq 199; polls since read up to 273, and 280 was seen once
    source, _ = make_source("outage-seq")
    StreamState.objects.filter(source=source).update(upstream_seq=199, contiguous_seq=273, highest_seq=280)
    # when
    [row] = source_rows([source.pk])
    # then
    assert row["upstream_seq"] == 280
    assert row["seq_behind"] == 7
