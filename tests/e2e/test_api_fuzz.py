"""Schemathesis over the whole OpenAPI document against the live ASGI server (uvicorn, fast ingest path included).

Every check is on: no 5xx, only documented status codes, content types,
headers and bodies that match their schemas, schema-invalid input refused,
schema-valid input not refused as invalid, auth not ignored, and the stateful
checks. It calls with a real API key of a tenant of its own (what the
fuzzing creates goes with that tenant's schema at the end; the other tests'
tenants never see it), where a source with records and a subscription exist:
the source's operations are pointed at it (config `parameters`), so they
answer from real rows and not only 404s, and the run's HAR report proves it.
The budget is bounded (examples per operation, a fixed seed) so it fits
`make test`; docs/api.md has what earlier runs found.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import Persona

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = int(os.environ.get("BEASTFLOW_FUZZ_EXAMPLES", "6"))
SEED = os.environ.get("BEASTFLOW_FUZZ_SEED", "1")  # fixed, so a run is reproducible; change it to explore
MAX_SECONDS = int(os.environ.get("BEASTFLOW_FUZZ_SECONDS", "240"))
ROOT = Path(__file__).resolve().parents[2]


def _seed(url: str, api_key: str) -> dict[str, Any]:
    """Objects for the operations to find: a source with three live records, a subscription."""
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30)
    import uuid

    name = f"fuzzed-{uuid.uuid4().hex[:8]}"
    created = client.post(
        "/api/v1/sources",
        json={"name": name, "connector": "http", "config": {"poll_url": "https://upstream.example/changes"}},
    )
    assert created.status_code == 201, created.text
    source_id = created.json()["id"]
    events = [
        {"id": f"seed-{n}", "type": "upsert", "key": f"order-{n}", "version": 1, "data": {"n": n}} for n in range(3)
    ]
    pushed = client.post(f"/api/v1/sources/{source_id}/events", json={"events": events})
    assert pushed.status_code == 202, pushed.text
    subscription = client.post("/api/v1/subscriptions", json={"url": "https://hooks.example/beastflow"})
    assert subscription.status_code == 201, subscription.text
    return {"source_id": source_id, "key": "order-1", "subscription_id": subscription.json()["id"]}


def _config(seeded: dict[str, Any]) -> str:
    """The source's reads, pushes, patches and previews find the seeded source; the rest keep generated ids.

    Not pointed: operations whose path is all there is to get wrong (a DELETE,
    POST .../poll), where the fixed id would turn every negative case (a wrong
    id) into a valid request, and the subscriptions' (the stateful phase
    mutates their ids in sequences, and the fixed id undid that: seen as an
    accepted "negative" replay). The stateful phase reaches subscriptions by
    the ids their creation answers.
    """
    return f"""
hooks = "tests.e2e.schemathesis_hooks"

[checks]
enabled = true

# Valid by the schema yet refused, as the API means to: a cursor this API did not give out (400; cursors
# are opaque), and what only the data can tell (422: a preset or source that does not exist, a source
# without snapshot_url asked to reconcile, events pushed to a source whose scheme reads another shape).
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "401", "403", "404", "409", "410", "422", "429"]

[[operations]]
include-method = "GET"
include-path-regex = "^/api/v1/sources/\\\\{{source_id\\\\}}"
parameters = {{ "path.source_id" = {seeded["source_id"]}, "path.key" = "{seeded["key"]}" }}

[[operations]]
include-name-regex = "^(POST|PATCH) /api/v1/sources/\\\\{{source_id\\\\}}(/events|/mapping/preview)?$"
parameters = {{ "path.source_id" = {seeded["source_id"]} }}
"""


@pytest.fixture
def fuzzed_tenant(personas: dict[str, Persona], django_db_blocker: Any) -> Iterator[str]:
    """A tenant for the fuzzing alone, and its API key; dropped with its schema after."""
    import uuid

    from tenants import services

    with django_db_blocker.unblock():
        tenant, issued = services.tenant_create(slug=f"fuzz-{uuid.uuid4().hex[:10]}")
    try:
        yield issued.raw
    finally:
        with django_db_blocker.unblock():
            services.tenant_delete(tenant=tenant)


def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_schema(
    live_server_url: str, fuzzed_tenant: str, tmp_path: Path
) -> None:
    # given: the live server with objects to find, and every check on
    api_key = fuzzed_tenant
    seeded = _seed(live_server_url, api_key)
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(seeded))
    st = Path(sys.executable).parent / "st"
    # when
    done = subprocess.run(
        [
            str(st),
            "--config-file",
            str(config),
            "run",
            f"{live_server_url}/api/schema/?format=json",
            "--url",
            live_server_url,
            "--header",
            f"Authorization: Bearer {api_key}",
            "--checks",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            SEED,
            # One worker: concurrent draws have hit a CPython 3.11 fault in `ast` ("AST constructor recursion
            # depth mismatch") inside schemathesis' generator; the one uvicorn worker is the bottleneck anyway.
            "--workers",
            "1",
            "--request-timeout",
            "20",
            "--suppress-health-check",
            "all",
            "--report",
            "har",
            "--report-har-path",
            str(tmp_path / "calls.har"),
        ],
        capture_output=True,
        text=True,
        timeout=MAX_SECONDS,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    output = done.stdout + done.stderr
    print(output)  # the run's own summary: operations, cases, failures
    # then
    assert done.returncode == 0, output[-20000:]
    # and the operations on objects found the seeded ones (every call is in the HAR report)
    calls = json.loads((tmp_path / "calls.har").read_text())["log"]["entries"]
    answered = Counter(
        (entry["request"]["method"], urlsplit(entry["request"]["url"]).path, entry["response"]["status"])
        for entry in calls
    )
    print(f"{len(calls)} calls; by status: {dict(Counter(status for (_, _, status) in answered.elements()))}")
    source = f"/api/v1/sources/{seeded['source_id']}"
    assert answered["GET", f"{source}/records/{seeded['key']}", 200] > 0
    assert answered["GET", f"{source}/records", 200] > 0
    assert answered["POST", f"{source}/events", 202] > 0
    assert not [call for call in answered if call[2] >= 500]
