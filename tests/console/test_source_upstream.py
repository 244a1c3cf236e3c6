"""The source page says how the source talks to its upstream: preset, push scheme, mapping, the last audit poll."""

from __future__ import annotations

import html
from datetime import timedelta

from django.test import Client
from django.utils import timezone

from engines.models import PollRun, PollStatus, PollTrigger, Source
from engines.sources import parse_spec, source_create
from tenants.models import Tenant
from tests.factories import make_source

PUSH_SECRET = "gh-webhook-secret-never-shown"


def _github_source() -> Source:
    body = {
        "name": "gh",
        "preset": "github-issues",
        "config": {"owner": "octo-org", "repo": "hello", "headers": {"Authorization": "Bearer tkn"}},
        "push": {"secret": PUSH_SECRET},
    }
    source, _ = source_create(spec=parse_spec(body))
    return source


def _page(client: Client, source: Source) -> str:
    response = client.get(f"/sources/{source.pk}/")
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def test_a_preset_sources_page_shows_its_preset_scheme_mapping_and_listing(
    in_acme: Tenant, acme_console: Client
) -> None:
    # given
    source = _github_source()
    # when
    body = _page(acme_console, source)
    # then
    assert 'data-upstream="preset">github-issues<' in body
    assert "GitHub issues of one repository" in body
    assert 'data-upstream="scheme">github<' in body
    assert "secret set" in body
    assert 'data-mapping="filter">headers."x-github-event" == \'issues\'<' in body
    assert 'data-mapping="key">to_string(body.issue.id)<' in body
    assert "https://api.github.com/repos/{owner}/{repo}/issues" in body
    assert "state=all" in body
    assert "No audit poll yet" in body
    assert PUSH_SECRET not in body


def test_the_last_audit_poll_shows_when_it_ran_and_what_push_had_missed(in_acme: Tenant, acme_console: Client) -> None:
    # given: an older audit that found nothing, then one that found two missed issues
    source = _github_source()
    now = timezone.now()
    PollRun.objects.create(
        source=source, trigger=PollTrigger.AUDIT, status=PollStatus.SUCCEEDED, started_at=now - timedelta(minutes=5)
    )
    PollRun.objects.create(
        source=source,
        trigger=PollTrigger.AUDIT,
        status=PollStatus.SUCCEEDED,
        started_at=now,
        missed=2,
        details={"missed_keys": ["1001", "1002"], "since": "2026-12-01T00:00:00Z", "not_modified": 0},
    )
    PollRun.objects.create(
        source=source, trigger=PollTrigger.MANUAL, status=PollStatus.SUCCEEDED, started_at=now + timedelta(seconds=1)
    )
    # when
    body = _page(acme_console, source)
    # then
    assert 'data-upstream="missed">2<' in body
    assert "records push had missed" in body
    assert '"1001"' in body and '"1002"' in body
    assert body.index("missed_keys") < body.index("not_modified")  # what push lost comes first
    assert "2 missed by push" in body  # and in the polls table


def test_a_source_of_beastflow_events_says_it_has_no_mapping(in_acme: Tenant, acme_console: Client) -> None:
    source, _ = make_source("orders")
    body = _page(acme_console, source)
    assert 'data-upstream="scheme">beastflow<' in body
    assert "No mapping" in body
    assert 'Preset: <span class="muted">none</span>' in body


def test_a_source_without_webhooks_says_so(in_acme: Tenant, acme_console: Client) -> None:
    polled, _ = make_source("feed-only", push={"expected": False})
    pushed, _ = make_source("pushed")
    assert 'data-upstream="push-expected"' in _page(acme_console, polled)
    assert 'data-upstream="push-expected"' not in _page(acme_console, pushed)
