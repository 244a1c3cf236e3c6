"""/api/schema/ documents presets, the sources' push block with its mapping, and the rest connector's config."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client


@pytest.fixture(scope="module")
def schema(django_db_setup: None, django_db_blocker: Any) -> dict[str, Any]:
    with django_db_blocker.unblock():
        response = Client().get("/api/schema/?format=json", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _component(schema: dict[str, Any], ref_or_name: str) -> dict[str, Any]:
    name = ref_or_name.rsplit("/", 1)[-1]
    component: dict[str, Any] = schema["components"]["schemas"][name]
    return component


def _response(schema: dict[str, Any], path: str, method: str, status: str) -> dict[str, Any]:
    content = schema["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
    return _component(schema, content["$ref"])


def _page_items(schema: dict[str, Any], page: dict[str, Any]) -> dict[str, Any]:
    """A list's page is CursorPage (next_cursor) plus its own `results`: the item schema."""
    cursor_page, own = page["allOf"]
    assert cursor_page == {"$ref": "#/components/schemas/CursorPage"}
    assert "next_cursor" in _component(schema, "CursorPage")["properties"]
    return _component(schema, own["properties"]["results"]["items"]["$ref"])


def _refs(node: dict[str, Any]) -> list[str]:
    return [option["$ref"].rsplit("/", 1)[-1] for option in node.get("anyOf", []) if "$ref" in option]


def test_the_presets_endpoints_have_response_schemas(schema: dict[str, Any]) -> None:
    item = _page_items(schema, _response(schema, "/api/v1/presets", "get", "200"))
    assert {"name", "title", "connector", "push_scheme", "config_schema", "docs"} <= set(item["properties"])
    detail = _response(schema, "/api/v1/presets/{name}", "get", "200")
    assert {"fills", "example", "config_schema"} <= set(detail["properties"])


def test_a_source_definition_shows_preset_push_mapping_and_the_connector_configs(schema: dict[str, Any]) -> None:
    # given: what POST /api/v1/sources takes
    body = schema["paths"]["/api/v1/sources"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    definition = _component(schema, body["$ref"])
    # then: a preset, and with it connector becomes optional
    assert "preset" in definition["properties"]
    assert "connector" not in definition["required"]
    # push and its mapping
    push = _component(schema, definition["properties"]["push"]["$ref"])
    assert {"scheme", "secret", "tolerance_s", "mapping"} <= set(push["properties"])
    scheme = _component(schema, push["properties"]["scheme"]["$ref"])
    assert set(scheme["enum"]) == {"beastflow", "standard-webhooks", "stripe", "github", "shopify"}
    mapping = _component(schema, _refs(push["properties"]["mapping"])[0])
    assert {"filter", "items", "id", "key", "version", "op", "data", "occurred_at"} == set(mapping["properties"])
    assert set(mapping["required"]) == {"id", "key", "version"}
    # config: one of the connectors' own configs, the rest connector's listing included
    assert {"RestConnectorConfig", "HttpConnectorConfig"} <= set(_refs(definition["properties"]["config"]))
    rest = _component(schema, "RestConnectorConfig")
    assert {"base_url", "list_path", "params", "records", "pagination", "since_param", "since_field", "key"} <= set(
        rest["properties"]
    )
    assert {"style", "next", "param"} <= set(_component(schema, "RestPagination")["properties"])
    assert "audit_interval_s" in _component(schema, "PollConfig")["properties"]


def test_a_source_as_returned_shows_its_preset_and_push_without_the_secret(schema: dict[str, Any]) -> None:
    created = _response(schema, "/api/v1/sources", "post", "201")
    assert {"preset", "push", "config", "ingest_url", "webhook_secret"} <= set(created["properties"])
    push = _component(schema, created["properties"]["push"]["$ref"])
    assert "secret_set" in push["properties"]
    assert "secret" not in push["properties"]
    one = _response(schema, "/api/v1/sources/{source_id}", "get", "200")
    assert "webhook_secret" not in one["properties"]
    assert "preset" in one["properties"]
    assert "ingest_url" in _page_items(schema, _response(schema, "/api/v1/sources", "get", "200"))["properties"]
    # the views' own summaries stay
    assert schema["paths"]["/api/v1/sources"]["post"]["summary"].startswith("Register a source")
