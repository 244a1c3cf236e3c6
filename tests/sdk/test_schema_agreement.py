"""The SDK agrees with the API's OpenAPI document (docs/openapi.yaml, the served /api/schema/ committed).

Every call the SDK makes is an operation of the document, with parameters
the operation declares, and every field an SDK type says is always there is
a property of the operation's answer. A change to the API that the SDK does
not follow fails here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from beastflow_sdk import calls
from beastflow_sdk._core import Call, push_call
from beastflow_sdk.models import (
    ChangesPage,
    Delivery,
    Failure,
    HealingAction,
    Preset,
    PushResult,
    RCAResult,
    Record,
    Source,
    Subscription,
)

DOCUMENT = yaml.safe_load((Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml").read_text())

# (the call, what the SDK says its answer is, whether that is a page of it)
OPERATIONS: list[tuple[Call, Any, bool]] = [
    (calls.sources_list(limit=10, cursor="x"), Source, True),
    (calls.source_create({"name": "n"}), Source, False),
    (calls.source_get(1), Source, False),
    (calls.source_update(1, {}), Source, False),
    (calls.source_delete(1), None, False),
    (calls.source_health(1), None, False),
    (calls.source_mode_switches(1, limit=5), None, True),
    (calls.source_polls(1), None, True),
    (calls.source_poll(1), None, False),
    (calls.source_reconcile(1), None, False),
    (calls.source_reconciliations(1), None, True),
    (calls.mapping_preview(1, {}), None, False),
    (calls.presets_list(), Preset, True),
    (calls.preset_get("github-issues"), Preset, False),
    (calls.records_list(1, limit=5, cursor="x"), Record, True),
    (calls.record_get(1, "a/b c"), Record, False),
    (calls.changes_list(after=3, source=1, limit=5), ChangesPage, False),
    (push_call(1, b"{}"), PushResult, False),
    (calls.subscriptions_list(), Subscription, True),
    (calls.subscription_create("http://x", sources=[1], from_seq=0, signature="beastflow"), Subscription, False),
    (calls.subscription_get(1), Subscription, False),
    (calls.subscription_delete(1), None, False),
    (calls.subscription_deliveries(1), Delivery, True),
    (calls.subscription_replay(1, from_seq=0), Subscription, False),
    (calls.subscription_enable(1), Subscription, False),
    (calls.failures_list(source=1, status="open"), Failure, True),
    (calls.failure_get(1), Failure, False),
    (calls.rca_list(source=1, status="confirmed"), RCAResult, True),
    (calls.rca_get(1), RCAResult, False),
    (calls.rca_confirm(1, category="auth_failed", note="n"), RCAResult, False),
    (calls.healing_actions_list(source=1, status="awaiting_approval"), HealingAction, True),
    (calls.healing_action_get(1), HealingAction, False),
    (calls.healing_action_approve(1, reason="r"), HealingAction, False),
    (calls.healing_action_reject(1, reason="r"), HealingAction, False),
]


def _operation(call: Call) -> dict[str, Any]:
    for template, item in DOCUMENT["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, call.path) and call.method.lower() in item:
            return dict(item[call.method.lower()])
    raise AssertionError(f"{call.method} {call.path} is not an operation of docs/openapi.yaml")


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        _, _, section, name = node["$ref"].split("/")  # "#/components/<section>/<name>"
        node = DOCUMENT["components"][section][name]
    return node


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema's properties, those of its allOf parts included (the pages are CursorPage + results)."""
    schema = _resolve(schema)
    found = dict(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        found |= _properties(part)
    return found


def _answer_schema(operation: dict[str, Any]) -> dict[str, Any]:
    for status, response in operation["responses"].items():
        if str(status).startswith("2"):
            content = _resolve(response).get("content") or {}
            if "application/json" in content:
                return _resolve(content["application/json"]["schema"])
    raise AssertionError(f"{operation['operationId']} has no JSON 2xx answer")


@pytest.mark.parametrize(("call", "model", "page"), OPERATIONS, ids=lambda v: getattr(v, "path", None) or "")
def test_the_sdks_call_is_an_operation_and_its_answer_has_the_typed_fields(call: Call, model: Any, page: bool) -> None:
    operation = _operation(call)
    parameters = [_resolve(parameter) for parameter in operation.get("parameters", [])]
    declared = {parameter["name"] for parameter in parameters if parameter.get("in") == "query"}
    assert set(call.params or {}) <= declared, (operation["operationId"], declared)
    if model is None:
        return
    schema = _answer_schema(operation)
    properties = _properties(schema)
    if page:
        assert {"results", "next_cursor"} <= set(properties), operation["operationId"]
        properties = _properties(properties["results"]["items"])
    missing = model.__required_keys__ - set(properties)
    assert not missing, f"{operation['operationId']}: the SDK's {model.__name__} has {sorted(missing)}, the API not"
