"""The OpenAPI document: valid, complete, and the same as the committed docs/openapi.yaml.

A change to the API surface shows as a difference from the committed copy:
this test fails until `make openapi` is run and the new file committed, so
the change is deliberate and reviewable.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from openapi_spec_validator import validate

from engines.connectors import schemes
from engines.ingest import openapi as ingest_openapi
from engines.ingest import service, validation

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> str:
    """What `make openapi` writes: drf-spectacular's own validation on, any warning fatal."""
    target = tmp_path_factory.mktemp("openapi") / "openapi.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    return target.read_text()


@pytest.fixture(scope="module")
def document(generated: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(generated)
    return loaded


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def test_the_committed_schema_is_the_one_the_code_serves(generated: str) -> None:
    committed = COMMITTED.read_text() if COMMITTED.exists() else ""
    if generated != committed:
        diff = "".join(
            list(
                difflib.unified_diff(
                    committed.splitlines(keepends=True),
                    generated.splitlines(keepends=True),
                    "docs/openapi.yaml (committed)",
                    "the code's schema",
                )
            )[:80]
        )
        pytest.fail(
            "The API surface changed: docs/openapi.yaml differs from the schema the code serves.\n"
            "If the change is meant, run `make openapi` (or `.venv/bin/python manage.py spectacular --validate "
            "--fail-on-warn --file docs/openapi.yaml`) and commit docs/openapi.yaml with it.\n\n" + diff
        )


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)  # openapi-spec-validator: raises on any violation


def test_every_operation_has_an_id_its_answers_and_bearer_auth(document: dict[str, Any]) -> None:
    operations = _operations(document)
    ids = [operation["operationId"] for _, _, operation in operations]
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    for path, method, operation in operations:
        where = f"{method.upper()} {path}"
        responses = operation["responses"]
        success = [status for status in responses if status.startswith("2")]
        assert success, where
        for status in success:
            if status != "204":
                assert "application/json" in responses[status]["content"], where
        # every error is a shared problem+json response component
        for status, response in responses.items():
            if not status.startswith("2"):
                assert response["$ref"].startswith("#/components/responses/"), (where, status)
        assert {"401", "503"} <= set(responses), where
        if "{" in path:
            assert "404" in responses, where
        assert {"bearerAuth": []} in operation["security"], where


def test_problem_answers_are_problem_json_with_an_example(document: dict[str, Any]) -> None:
    for name, response in document["components"]["responses"].items():
        media = response["content"]["application/problem+json"]
        assert media["schema"] == {"$ref": "#/components/schemas/Problem"}, name
        assert {"type", "title", "status", "detail", "errors"} <= set(media["example"]), name
    assert "Retry-After" in document["components"]["responses"]["TooManyRequests"]["headers"]


def test_cursor_pagination_is_described_once_and_reused(document: dict[str, Any]) -> None:
    parameters = document["components"]["parameters"]
    assert parameters["Limit"]["name"] == "limit" and parameters["Cursor"]["name"] == "cursor"
    paged = [
        (path, operation)
        for path, method, operation in _operations(document)
        if {"$ref": "#/components/parameters/Cursor"} in operation.get("parameters", [])
    ]
    assert len(paged) >= 10
    schemas = document["components"]["schemas"]
    for path, operation in paged:
        ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        page = schemas[ref.rsplit("/", 1)[-1]]
        assert page["allOf"][0] == {"$ref": "#/components/schemas/CursorPage"}, path


def test_the_ingest_operation_is_described_from_the_code_that_serves_it(document: dict[str, Any]) -> None:
    operation = document["paths"]["/api/v1/sources/{source_id}/events"]["post"]
    content = operation["requestBody"]["content"]
    assert {"application/json", "application/x-ndjson"} <= set(content)
    assert {"single", "batch", "github", "stripe", "shopify", "standard-webhooks"} <= set(
        content["application/json"]["examples"]
    )
    assert {"202", "400", "401", "404", "413", "422", "429", "503"} == set(operation["responses"])
    # every push scheme the code verifies is a way in
    assert set(ingest_openapi.SCHEME_SECURITY) == set(schemes.SCHEMES)
    security = {name for requirement in operation["security"] for name in requirement}
    assert security == {"bearerAuth", *ingest_openapi.SCHEME_SECURITY.values()}
    assert set(ingest_openapi.SCHEME_SECURITY.values()) <= set(document["components"]["securitySchemes"])
    # the limits are the validator's
    schemas = document["components"]["schemas"]
    event = schemas["PushEvent"]["properties"]
    assert event["type"]["enum"] == list(validation.TYPES)
    assert event["id"]["maxLength"] == validation.MAX_ID_LEN
    assert event["key"]["maxLength"] == validation.MAX_KEY_LEN
    assert schemas["PushBatch"]["properties"]["events"]["maxItems"] == validation.MAX_EVENTS
    assert str(service.MAX_BODY_BYTES) in operation["description"]


def test_every_example_in_the_document_matches_its_schema(document: dict[str, Any]) -> None:
    import jsonschema

    def check(value: Any, schema: dict[str, Any], where: str) -> None:
        validator = jsonschema.Draft202012Validator({**schema, "components": document["components"]})
        errors = [f"{where}: {list(error.absolute_path)} {error.message}" for error in validator.iter_errors(value)]
        assert not errors, errors[:3]

    checked = 0
    for name, schema in document["components"]["schemas"].items():
        for position, example in enumerate(schema.get("examples", [])):
            check(example, {"$ref": f"#/components/schemas/{name}"}, f"schema {name} example {position}")
            checked += 1
    for name, response in document["components"]["responses"].items():
        media = response["content"]["application/problem+json"]
        check(media["example"], media["schema"], f"response {name}")
        checked += 1
    for path, method, operation in _operations(document):
        bodies = [("request", operation.get("requestBody", {}))]
        bodies += [(status, answer) for status, answer in operation["responses"].items() if "content" in answer]
        for label, body in bodies:
            for media_type, media in body.get("content", {}).items():
                if media_type != "application/json":
                    continue
                for example_name, example in media.get("examples", {}).items():
                    check(example["value"], media["schema"], f"{method.upper()} {path} {label} {example_name}")
                    checked += 1
    assert checked >= 25
