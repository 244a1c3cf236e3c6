"""A tenant's retention pass: its own settings, what callbacks still need, and the command operators run."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from engines.models import Change
from engines.partitions import changes_floor, partitions_ensure
from retention.services import retention_pass
from tenants.models import Tenant
from tests.callbacks.support import insert_changes
from tests.factories import make_source


def _old_changes(source_id: int, count: int, days_ago: int) -> list[int]:
    old = timezone.now() - timedelta(days=days_ago)
    partitions_ensure(schema=connection.schema_name, now=old)  # type: ignore[attr-defined]
    seqs = [c["seq"] for c in insert_changes(source_id, count)]
    Change.objects.filter(seq__in=seqs).update(committed_at=old)
    return seqs


def test_a_pass_follows_the_tenants_retention_settings(in_acme: Tenant) -> None:
    # given: changes of 40 and 10 days ago; acme keeps changes 30 days
    Tenant.objects.filter(pk=in_acme.pk).update(change_retention_days=30)
    tenant = Tenant.objects.get(pk=in_acme.pk)
    source, _ = make_source()
    very_old = _old_changes(source.pk, 2, days_ago=40)
    kept = _old_changes(source.pk, 2, days_ago=10)
    # when
    result = retention_pass(tenant=tenant)
    # then
    assert result.changes is not None and result.changes.floor >= max(very_old)
    assert not Change.objects.filter(seq__in=very_old).exists()
    assert Change.objects.filter(seq__in=kept).count() == 2


def test_a_tenant_that_keeps_changes_forever_loses_none(in_acme: Tenant) -> None:
    # given
    Tenant.objects.filter(pk=in_acme.pk).update(change_retention_days=0, event_retention_days=0)
    tenant = Tenant.objects.get(pk=in_acme.pk)
    source, _ = make_source()
    old = _old_changes(source.pk, 3, days_ago=400)
    floor = changes_floor()
    # when
    result = retention_pass(tenant=tenant)
    # then
    assert result.changes is None and result.events_deleted == 0
    assert Change.objects.filter(seq__in=old).count() == 3
    assert changes_floor() == floor


def test_the_retention_command_runs_a_pass_and_says_what_it_did(in_acme: Tenant) -> None:
    # given
    source, _ = make_source()
    _old_changes(source.pk, 1, days_ago=60)
    out = StringIO()
    # when
    call_command("retention", "--tenant", "acme", stdout=out)
    # then
    (line,) = out.getvalue().splitlines()
    report = json.loads(line)
    assert report["tenant"] == "acme"
    assert report["changes_partitions_dropped"]
    assert report["changes_floor"] >= 1
