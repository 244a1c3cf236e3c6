from __future__ import annotations

from django_tenants.utils import tenant_context

from engines.models import Source
from engines.sources import webhook_secret
from tests.conftest import Persona
from tests.factories import source_spec


def test_a_minimal_source_gets_documented_defaults_and_a_secret_once(alice: Persona) -> None:
    # when
    created = alice.client().post("/api/v1/sources", source_spec(), format="json")
    # then
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["mode"] == "event"
    assert body["hysteresis"]["fail_threshold"] == 3
    assert body["poll"] == {"min_interval_s": 1.0, "max_interval_s": 60.0, "page_budget": 20, "audit_interval_s": 60.0}
    assert body["push"] == {
        "expected": True,
        "scheme": "beastflow",
        "tolerance_s": 300.0,
        "require_timestamp": False,
        "mapping": None,
        "secret_set": False,
    }
    assert body["ingest_url"].endswith(f"/api/v1/sources/{body['id']}/events")
    assert body["webhook_secret"].startswith("whsec_")
    fetched = alice.client().get(f"/api/v1/sources/{body['id']}").json()
    assert "webhook_secret" not in fetched


def test_the_webhook_secret_is_encrypted_at_rest(alice: Persona) -> None:
    body = alice.client().post("/api/v1/sources", source_spec(), format="json").json()
    with tenant_context(alice.tenant):
        source = Source.objects.get(pk=body["id"])
        assert body["webhook_secret"] not in source.webhook_secret_encrypted
        assert webhook_secret(source) == body["webhook_secret"]


def test_invalid_definitions_get_every_error_with_its_field(alice: Persona) -> None:
    # when
    response = alice.client().post(
        "/api/v1/sources",
        {"name": "", "connector": "http", "config": {"poll_url": "not a url"}, "poll": {"min_interval_s": -1}},
        format="json",
    )
    # then
    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert {"name", "config.poll_url", "poll.min_interval_s"} <= fields
    assert alice.client().get("/api/v1/sources").json()["results"] == []


def test_an_unknown_connector_is_refused(alice: Persona) -> None:
    response = alice.client().post("/api/v1/sources", source_spec(connector="ftp"), format="json")
    assert response.status_code == 422
    assert any(error["field"] == "connector" for error in response.json()["errors"])


def test_a_duplicate_name_is_a_409(alice: Persona) -> None:
    alice.client().post("/api/v1/sources", source_spec(), format="json")
    response = alice.client().post("/api/v1/sources", source_spec(), format="json")
    assert response.status_code == 409


def test_list_pages_newest_first_with_a_cursor(alice: Persona) -> None:
    client = alice.client()
    ids = [client.post("/api/v1/sources", source_spec(f"s{n}"), format="json").json()["id"] for n in range(5)]
    first = client.get("/api/v1/sources?limit=2").json()
    second = client.get(f"/api/v1/sources?limit=2&cursor={first['next_cursor']}").json()
    third = client.get(f"/api/v1/sources?limit=2&cursor={second['next_cursor']}").json()
    seen = [s["id"] for page in (first, second, third) for s in page["results"]]
    assert seen == list(reversed(ids))
    assert third["next_cursor"] is None


def test_bad_paging_parameters_are_400(alice: Persona) -> None:
    client = alice.client()
    assert client.get("/api/v1/sources?limit=0").status_code == 400
    assert client.get("/api/v1/sources?limit=501").status_code == 400
    assert client.get("/api/v1/sources?limit=x").status_code == 400
    assert client.get("/api/v1/sources?cursor=%%%").status_code == 400


def test_patch_replaces_top_level_fields_and_validates_the_result(alice: Persona) -> None:
    client = alice.client()
    source_id = client.post("/api/v1/sources", source_spec(), format="json").json()["id"]
    ok = client.patch(f"/api/v1/sources/{source_id}", {"paused": True, "poll": {"min_interval_s": 2}}, format="json")
    assert ok.status_code == 200
    assert ok.json()["paused"] is True
    assert ok.json()["poll"]["min_interval_s"] == 2.0
    bad = client.patch(f"/api/v1/sources/{source_id}", {"mode": "polling"}, format="json")
    assert bad.status_code == 422
    assert client.get(f"/api/v1/sources/{source_id}").json()["mode"] == "event"


def test_delete_removes_the_source(alice: Persona) -> None:
    client = alice.client()
    source_id = client.post("/api/v1/sources", source_spec(), format="json").json()["id"]
    assert client.delete(f"/api/v1/sources/{source_id}").status_code == 204
    assert client.get(f"/api/v1/sources/{source_id}").status_code == 404
