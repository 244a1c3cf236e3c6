"""POST /api/v1/sources/{id}/mapping/preview: what a push mapping makes of a sample request, storing nothing."""

from __future__ import annotations

import uuid
from typing import Any

from django_tenants.utils import tenant_context

from engines.ingest.hashing import record_hash
from engines.models import Change, Event, Record
from tests.conftest import Persona
from tests.engines.test_native_push import MAPPINGS, push_config
from tests.factories import make_source
from tests.upstream_fixtures import upstream_fixture  # noqa: F401  (the `upstream` fixture)
from tests.upstream_packages import UpstreamSigner

GITHUB_HEADERS = {"X-GitHub-Event": "issues", "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}


def make(persona: Persona, **overrides: Any) -> int:
    with tenant_context(persona.tenant):
        source, _ = make_source(f"preview-{uuid.uuid4().hex[:6]}", **overrides)
    return int(source.pk)


def preview(persona: Persona, source_id: int, body: Any) -> Any:
    return persona.client().post(f"/api/v1/sources/{source_id}/mapping/preview", body, format="json")


def stored(persona: Persona, source_id: int) -> tuple[int, int, int]:
    with tenant_context(persona.tenant):
        return tuple(  # type: ignore[return-value]
            model.objects.filter(source_id=source_id).count() for model in (Event, Record, Change)
        )


def test_a_github_delivery_previews_as_its_issue_and_nothing_is_stored(
    alice: Persona, upstream: UpstreamSigner
) -> None:
    # given
    source_id = make(alice, push=push_config("github"))
    example = next(e for e in upstream.github_examples("issues") if e["action"] == "edited")
    # when
    response = preview(alice, source_id, {"headers": GITHUB_HEADERS, "body": example})
    # then
    assert response.status_code == 200
    assert response.json() == {
        "events": [
            {
                "id": GITHUB_HEADERS["X-GitHub-Delivery"],
                "type": "upsert",
                "key": str(example["issue"]["id"]),
                "version": 1557933618000000,  # 2019-05-15T15:20:18Z in microseconds
                "data": example["issue"],
                "occurred_at": None,
                "hash": record_hash(example["issue"]),
            }
        ],
        "ignored": False,
        "errors": [],
    }
    assert example["issue"]["updated_at"] == "2019-05-15T15:20:18Z"
    assert stored(alice, source_id) == (0, 0, 0)


def test_a_ping_previews_as_ignored(alice: Persona, upstream: UpstreamSigner) -> None:
    source_id = make(alice, push=push_config("github"))
    ping = upstream.github_examples("ping")[0]
    response = preview(alice, source_id, {"headers": {"X-GitHub-Event": "ping"}, "body": ping})
    assert response.json() == {"events": [], "ignored": True, "errors": []}


def test_a_request_the_mapping_cannot_read_previews_its_errors(alice: Persona, upstream: UpstreamSigner) -> None:
    source_id = make(alice, push=push_config("github"))
    response = preview(alice, source_id, {"headers": GITHUB_HEADERS, "body": upstream.github_examples("ping")[0]})
    assert response.status_code == 200
    body = response.json()
    assert body["events"] == [] and body["ignored"] is False
    assert {e["field"] for e in body["errors"]} == {"push.mapping.key", "push.mapping.version", "push.mapping.data"}


def test_an_unsaved_mapping_can_be_tried_on_any_source(alice: Persona) -> None:
    # given: a source that takes BeastFlow events and has no mapping of its own
    source_id = make(alice)
    request = {
        "headers": {"Webhook-Id": "msg_1"},
        "body": {"type": "batch", "records": [{"sku": "a", "rev": 2}, {"sku": "b", "rev": "2026-11-26T10:00:00Z"}]},
        "mapping": {"items": "body.records", "id": "join('-', [headers.\"webhook-id\", item.sku])", "key": "item.sku",
                    "version": "item.rev"},
    }  # fmt: skip
    # when
    without = preview(alice, source_id, {k: v for k, v in request.items() if k != "mapping"})
    tried = preview(alice, source_id, request)
    # then
    assert without.status_code == 422 and without.json()["errors"][0]["field"] == "mapping"
    assert [(e["id"], e["key"], e["version"]) for e in tried.json()["events"]] == [
        ("msg_1-a", "a", 2),
        ("msg_1-b", "b", 1_795_687_200_000_000),
    ]


def test_an_invalid_mapping_is_422_naming_its_field(alice: Persona) -> None:
    source_id = make(alice, push=push_config("github"))
    response = preview(alice, source_id, {"body": {}, "mapping": {**MAPPINGS["github"], "key": "body.issue.[id"}})
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["mapping.key"]


def test_a_bad_preview_request_is_a_problem(alice: Persona) -> None:
    source_id = make(alice, push=push_config("github"))
    no_body = preview(alice, source_id, {"headers": {}})
    bad_headers = preview(alice, source_id, {"headers": {"x": {"nested": 1}}, "body": {}})
    not_object = alice.client().post(f"/api/v1/sources/{source_id}/mapping/preview", [1], format="json")
    assert [no_body.status_code, bad_headers.status_code, not_object.status_code] == [422, 422, 400]
    assert no_body.json()["errors"][0]["field"] == "body"


def test_the_data_schema_applies_in_the_preview(alice: Persona) -> None:
    schema = {"type": "object", "required": ["title"]}
    source_id = make(alice, push=push_config("github"), data_schema=schema)
    body = {"action": "opened", "issue": {"id": 1, "updated_at": "2026-11-26T10:00:00Z"}}
    response = preview(alice, source_id, {"headers": GITHUB_HEADERS, "body": body})
    assert [e["field"] for e in response.json()["errors"]] == ["push.mapping.data"]


def test_another_tenants_source_is_404_and_no_key_is_401(alice: Persona, charlie: Persona) -> None:
    source_id = make(alice, push=push_config("github"))
    assert preview(charlie, source_id, {"body": {}}).status_code == 404
    from rest_framework.test import APIClient

    anonymous = APIClient().post(f"/api/v1/sources/{source_id}/mapping/preview", {"body": {}}, format="json")
    assert anonymous.status_code == 401


def test_the_preview_is_in_the_openapi_schema(alice: Persona) -> None:
    schema = alice.client().get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/sources/{source_id}/mapping/preview"]["post"]
    assert "MappingPreviewInput" in str(operation["requestBody"])
    assert "MappingPreviewOutput" in str(operation["responses"]["200"])
