"""The websockets' AsyncAPI document: valid AsyncAPI 3.0, the committed copy, and the frames the server really sends."""

from __future__ import annotations

import difflib
import fcntl
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from django_tenants.utils import tenant_context

from beastflow.asgi import application
from console.asyncapi import asyncapi_document
from console.management.commands.asyncapi import asyncapi_yaml
from engines import selectors
from engines.models import Change
from tests.conftest import Persona
from tests.factories import make_source

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "asyncapi.yaml"
# The AsyncAPI initiative's own JSON Schemas, as packaged on npm (installed at test time, never vendored).
SPECS_PACKAGE = "@asyncapi/specs@6.11.1"
SPECS_FILE = Path("node_modules/@asyncapi/specs/schemas/3.0.0-without-$id.json")
CACHE = ROOT / ".beastflow" / "npm-asyncapi"
_OFFLINE = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ECONNRESET", "ENETUNREACH", "network", "proxy")


def _asyncapi_schema() -> dict[str, Any]:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: the AsyncAPI schema comes from its npm package")
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (CACHE / SPECS_FILE).is_file():
            (CACHE / "package.json").write_text(json.dumps({"name": "beastflow-asyncapi-tests", "private": True}))
            done = subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", SPECS_PACKAGE],
                cwd=CACHE,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if done.returncode != 0:
                output = done.stdout + done.stderr
                if any(word in output for word in _OFFLINE):
                    pytest.skip(f"npm cannot reach its registry for {SPECS_PACKAGE}: {output.strip()[-200:]}")
                raise RuntimeError(f"npm install {SPECS_PACKAGE} failed:\n{output}")
    loaded: dict[str, Any] = json.loads((CACHE / SPECS_FILE).read_text())
    return loaded


def _payload_schema(document: dict[str, Any], message: str) -> dict[str, Any]:
    """A message's payload, with the document's components at hand for its $refs."""
    payload = document["components"]["messages"][message]["payload"]
    return {**payload, "components": document["components"]}


def test_the_committed_asyncapi_document_is_the_one_the_code_serves() -> None:
    generated = asyncapi_yaml()
    committed = COMMITTED.read_text() if COMMITTED.exists() else ""
    if generated != committed:
        diff = "".join(
            list(difflib.unified_diff(committed.splitlines(True), generated.splitlines(True), "committed", "code"))[:60]
        )
        pytest.fail(
            "The websockets' surface changed: docs/asyncapi.yaml differs from console/asyncapi.py's document.\n"
            "If the change is meant, run `make openapi` (or `.venv/bin/python manage.py asyncapi --file "
            "docs/asyncapi.yaml`) and commit docs/asyncapi.yaml with it.\n\n" + diff
        )


def test_the_document_is_valid_against_the_asyncapi_3_json_schema() -> None:
    schema = _asyncapi_schema()
    validator = jsonschema.Draft7Validator(schema)
    document = asyncapi_document()
    errors = sorted(validator.iter_errors(document), key=lambda error: list(error.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]
    # and the schema does reject what AsyncAPI would
    broken = {**document, "channels": {"changes": {"address": 5}}}
    assert not validator.is_valid(broken)


def test_it_is_served_beside_the_openapi_document_without_a_key(db: None) -> None:
    response = Client().get("/api/asyncapi.json")
    assert response.status_code == 200
    served = response.json()
    assert served["asyncapi"] == "3.0.0"
    assert {"changes", "ping", "consoleOverview"} == set(served["channels"])
    assert served["channels"]["changes"]["x-close-codes"]["4410"].startswith("retention")


@pytest.mark.usefixtures("close_db_threads")
@pytest.mark.django_db
async def test_the_ping_frames_match_their_messages(alice: Persona) -> None:
    document = asyncapi_document()
    communicator = WebsocketCommunicator(
        application, "/ws/v1/ping", headers=[(b"authorization", f"Bearer {alice.api_key}".encode())]
    )
    connected, _ = await communicator.connect()
    assert connected
    jsonschema.validate(await communicator.receive_json_from(), _payload_schema(document, "hello"))
    await communicator.send_json_to({"type": "ping"})
    jsonschema.validate(await communicator.receive_json_from(), _payload_schema(document, "pong"))
    await communicator.send_json_to({"type": "other"})
    jsonschema.validate(await communicator.receive_json_from(), _payload_schema(document, "error"))
    await communicator.disconnect()


def test_a_change_as_the_stream_renders_it_matches_the_change_message(alice: Persona) -> None:
    # given: a committed upsert and a delete
    with tenant_context(alice.tenant):
        source, _ = make_source("asyncapi-changes")
    events = [
        {"id": "a1", "type": "upsert", "key": "k", "version": 1, "data": {"n": 1}},
        {"id": "a2", "type": "delete", "key": "k", "version": 2},
    ]
    pushed = alice.client().post(f"/api/v1/sources/{source.pk}/events", {"events": events}, format="json")
    assert pushed.status_code == 202
    # when: rendered as the websocket sends them (engines/changes_reads.py renders with change_render)
    with tenant_context(alice.tenant):
        frames = [selectors.change_render(change) for change in Change.objects.filter(source=source).order_by("seq")]
    # then
    document = asyncapi_document()
    assert [frame["type"] for frame in frames] == ["upsert", "delete"]
    for frame in frames:
        jsonschema.validate(frame, _payload_schema(document, "change"))
