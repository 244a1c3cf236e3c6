"""Spare tenant schemas: cloned ahead, renamed into a new tenant's schema (tenants/schema_spares.py).

These tests commit (DDL seen by other connections) and clean up what they create.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from django.db import connection, connections, transaction
from django.test import Client
from django.test.utils import override_settings

from tenants import schema_spares, schema_template, services
from tenants.models import Tenant
from tenants.tasks import spares_fill_task
from tests.tenants.test_provisioning import after_clone_failing, catalog, migration_rows


def spare_names() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", [schema_spares.PREFIX])
        return sorted(str(row[0]) for row in cursor.fetchall())


def spares_clear() -> None:
    with connection.cursor() as cursor:
        for name in spare_names():
            cursor.execute(f'DROP SCHEMA "{name}" CASCADE')


def made(how: str) -> float:
    return schema_spares.SCHEMAS_MADE.labels(how)._value.get()


@pytest.fixture
def spares(personas: object, django_db_blocker: pytest.FixtureRequest) -> Iterator[list[str]]:
    """No spare to begin with, BEASTFLOW_TENANT_SPARES=2; yields slugs to delete afterwards, with every spare."""
    slugs: list[str] = []
    with django_db_blocker.unblock(), override_settings(BEASTFLOW_TENANT_SPARES=2):  # type: ignore[attr-defined]
        schema_template.template_ensure()
        spares_clear()
        try:
            yield slugs
        finally:
            for slug in slugs:
                tenant = Tenant.objects.filter(slug=slug).first()
                if tenant is not None:
                    services.tenant_delete(tenant=tenant)
            spares_clear()


def test_a_new_tenant_takes_a_ready_spare_and_the_fill_makes_another(
    spares: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    refills: list[dict[str, object]] = []
    monkeypatch.setattr(spares_fill_task, "apply_async", lambda **options: refills.append(options))
    assert schema_spares.spares_fill() == 2
    ready, renamed = spare_names(), made("spare")
    assert len(ready) == 2 and schema_spares.spares_ready() == 2
    assert "beastflow_tenant_spares 2.0" in Client(HTTP_HOST="127.0.0.1").get("/metrics").content.decode()
    spares.append("sparecheck")
    # when
    tenant, issued = services.tenant_create(slug="sparecheck")
    # then: one spare became the tenant's schema, a full copy of the template
    left = spare_names()
    assert len(left) == 1 and set(left) < set(ready)
    assert made("spare") == renamed + 1
    assert tenant.ready and issued.raw
    assert catalog(tenant.schema_name) == catalog(schema_template.TEMPLATE_SCHEMA)
    assert migration_rows(tenant.schema_name) == schema_template.migration_nodes()
    with connection.cursor() as cursor:
        cursor.execute("SELECT obj_description(%s::regnamespace, 'pg_namespace')", [tenant.schema_name])
        assert cursor.fetchone()[0] is None  # no longer a spare
    # and: a refill was asked for once the creation committed; it makes the one taken again, then nothing
    assert refills == [{}]
    assert schema_spares.spares_fill() == 1
    assert schema_spares.spares_fill() == 0
    assert len(spare_names()) == 2


def test_a_spare_of_another_migration_set_is_never_taken_and_the_fill_drops_it(spares: list[str]) -> None:
    # given: a spare cloned for another migration set (a deploy came since)
    with transaction.atomic(), connection.cursor() as cursor:
        schema_template.schema_create(schema=schema_spares.PREFIX + "old")
        cursor.execute(f'COMMENT ON SCHEMA "{schema_spares.PREFIX}old" IS %s', [schema_spares.COMMENT_PREFIX + "old"])
    cloned = made("clone")
    spares.append("afterold")
    # when
    services.tenant_create(slug="afterold")
    # then: cloned, the old spare left alone; the fill drops it and makes ready ones
    assert made("clone") == cloned + 1
    assert spare_names() == [schema_spares.PREFIX + "old"] and schema_spares.spares_ready() == 0
    assert schema_spares.spares_fill() == 2
    assert schema_spares.PREFIX + "old" not in spare_names() and schema_spares.spares_ready() == 2


def test_a_failed_creation_gives_its_spare_back(spares: list[str]) -> None:
    # given
    schema_spares.spares_fill(target=1)
    ready = spare_names()
    spares.append("sparefail")
    # when: the last step of the creating transaction fails
    with after_clone_failing(), pytest.raises(RuntimeError, match="boom"):
        services.tenant_create(slug="sparefail")
    # then
    assert spare_names() == ready and len(ready) == 1
    assert not Tenant.objects.filter(slug="sparefail").exists()


def test_two_creators_at_once_never_take_the_same_spare(spares: list[str]) -> None:
    # given: one spare, and a first creator that has taken it but not committed yet
    schema_spares.spares_fill(target=1)
    (only,) = spare_names()
    taken, release = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def first() -> None:
        try:
            with transaction.atomic():
                outcome["first"] = schema_spares.spare_take(schema="t_sparefirst")
                taken.set()
                release.wait(30)
                raise RuntimeError("rolled back on purpose")
        except RuntimeError:
            pass
        finally:
            connections.close_all()

    thread = threading.Thread(target=first)
    thread.start()
    assert taken.wait(30)
    spares.append("sparesecond")
    try:
        # when: a second creation meanwhile
        tenant, _ = services.tenant_create(slug="sparesecond")
    finally:
        release.set()
        thread.join(30)
    # then: the first held the spare, the second cloned; the spare is back once the first rolled back
    assert outcome["first"] is True
    assert catalog(tenant.schema_name) == catalog(schema_template.TEMPLATE_SCHEMA)
    assert spare_names() == [only]


def test_without_spares_configured_a_tenant_is_cloned(spares: list[str]) -> None:
    # given
    schema_spares.spares_fill(target=1)
    ready = spare_names()
    spares.append("nospares")
    # when
    with override_settings(BEASTFLOW_TENANT_SPARES=0):
        tenant, _ = services.tenant_create(slug="nospares")
        # then
        assert schema_spares.spares_fill() == 0
    assert spare_names() == ready
    assert catalog(tenant.schema_name) == catalog(schema_template.TEMPLATE_SCHEMA)
