"""Both front doors of POST /api/v1/sources/{id}/events answer a bad request alike, with the same precedence.

Each request below has faults, each named by the step of engines/ingest/steps.py
that refuses it and the status that step alone would answer. The answer must
be that of the fault whose step comes first in STEPS, and the raw ASGI fast
path (a real uvicorn) and the Django view (the test client) must give it
with the same status, problem body and Retry-After. The tenant's quota
bucket is emptied before every request: whatever reaches the quota is over it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from beastflow.redis_client import get_redis, key
from beastflow.tenancy import use_public
from engines import sources
from engines.ingest.steps import STEPS
from engines.models import Source
from tests.conftest import Persona
from tests.factories import make_source

GITHUB_SECRET = "gh-doors-secret-0123"
GITHUB_MAPPING = {
    "filter": "headers.\"x-github-event\" == 'issues'",
    "id": 'headers."x-github-delivery"',
    "key": "body.issue.id",
    "version": "body.issue.updated_at",
    "data": "body.issue",
}
UNKNOWN_SOURCE = 987_654_321
ORDER = {step.name: position for position, step in enumerate(STEPS)}

Request = tuple[int, bytes, dict[str, str]]  # source id, body, headers (lower-cased names)


@pytest.fixture
def committed_github(personas: dict[str, Persona], django_db_blocker: Any) -> Iterator[int]:
    """A committed source of GitHub's push scheme in acme (the live server sees it); removed after."""
    with django_db_blocker.unblock(), tenant_context(personas["alice"].tenant):
        source, _ = make_source(
            f"doors-github-{uuid.uuid4().hex[:8]}",
            push={"scheme": "github", "secret": GITHUB_SECRET, "mapping": GITHUB_MAPPING},
        )
    yield source.pk
    with django_db_blocker.unblock(), tenant_context(personas["alice"].tenant):
        found = Source.objects.filter(pk=source.pk).first()
        if found is not None:
            sources.source_delete(source=found)
    use_public()


def _event(event_id: str) -> bytes:
    return json.dumps({"id": event_id, "type": "upsert", "key": "k", "version": 1, "data": {"n": 1}}).encode()


def _signed(secret: str, body: bytes) -> dict[str, str]:
    return {"x-beastflow-signature": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def _github(event: str, payload: Any, *, signed: bool = True) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    headers = {"x-github-event": event, "x-github-delivery": str(uuid.uuid4())}
    if signed:
        headers["x-hub-signature-256"] = "sha256=" + hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, headers


def _cases(
    source: tuple[int, str], github: int, personas: dict[str, Persona]
) -> dict[str, tuple[Request, dict[str, int]]]:
    source_id, secret = source
    alice = {"authorization": f"Bearer {personas['alice'].api_key}"}
    charlie = {"authorization": f"Bearer {personas['charlie'].api_key}"}
    nope = {"authorization": "Bearer bf_nope"}
    bad_signature = {"x-beastflow-signature": "sha256=00"}
    valid, invalid, malformed = _event("d1"), b'{"id": "d2", "type": "upsert"}', b"{"
    huge = b'{"blob": "' + b"x" * (9 * 1024 * 1024) + b'"}'
    too_many = json.dumps({"events": [json.loads(_event(f"m{n}")) for n in range(1001)]}).encode()
    no_key_issue = _github("issues", {"action": "opened", "issue": {"updated_at": "2026-11-26T10:00:00Z"}})
    ping = _github("ping", {"zen": "Design for failure."})
    unsigned = _github("issues", {"action": "opened"}, signed=False)[1]
    return {
        "unsigned and malformed": ((source_id, malformed, {}), {"verify": 401, "read": 400}),
        "an unknown key and invalid events": ((source_id, invalid, nope), {"route": 401, "read": 422}),
        "over the size limit and unsigned": ((source_id, huge, {}), {"size": 413, "verify": 401}),
        "over the size limit and an unknown key": ((source_id, huge, nope), {"size": 413, "route": 401}),
        "an unknown source and a bad signature": (
            (UNKNOWN_SOURCE, valid, bad_signature),
            {"route": 404, "verify": 401},
        ),
        "an unknown source, unsigned and malformed": ((UNKNOWN_SOURCE, malformed, {}), {"route": 401, "read": 400}),
        "another tenant's key and malformed": ((source_id, malformed, charlie), {"source": 404, "read": 400}),
        "a bad signature and malformed": ((source_id, malformed, bad_signature), {"verify": 401, "read": 400}),
        "a bad signature and over quota": ((source_id, valid, bad_signature), {"verify": 401, "quota": 429}),
        "invalid events and over quota": ((source_id, invalid, alice), {"read": 422, "quota": 429}),
        "too many events and over quota": ((source_id, too_many, alice), {"read": 413, "quota": 429}),
        "signed, valid and over quota": ((source_id, valid, _signed(secret, valid)), {"quota": 429}),
        "native: unsigned and not JSON": ((github, b"{", unsigned), {"verify": 401, "read": 400}),
        "native: a mapping that finds no key, over quota": ((github, *no_key_issue), {"read": 422, "quota": 429}),
        "native: a key's body is not events, over quota": ((github, ping[0], alice), {"read": 422, "quota": 429}),
        "native: a ping while over quota (no events, no quota)": ((github, *ping), {}),
    }


def _empty_bucket(tenant: str) -> None:
    """No tokens, refilled from an hour ahead: the next request of the tenant with events is over its quota."""
    get_redis().hset(key("quota", tenant), mapping={"t": 0, "s": time.time() + 3600})


def _through_the_fast_path(url: str, request: Request) -> httpx.Response:
    source_id, body, headers = request
    return httpx.post(
        f"{url}/api/v1/sources/{source_id}/events",
        content=body,
        headers={"content-type": "application/json", **headers},
        timeout=30,
    )


def _through_the_view(request: Request) -> Any:
    source_id, body, headers = request
    return Client().post(
        f"/api/v1/sources/{source_id}/events", data=body, content_type="application/json", headers=headers
    )


def test_both_doors_answer_the_first_refusing_step_alike(
    live_server_url: str,
    committed_source: tuple[int, str],
    committed_github: int,
    personas: dict[str, Persona],
    django_db_blocker: Any,
) -> None:
    cases = _cases(committed_source, committed_github, personas)
    tenant = personas["alice"].tenant.slug
    try:
        for name, (request, faults) in cases.items():
            # given: a request whose faults name their steps (a status each step may answer)
            assert all(status in STEPS[ORDER[step]].refusals for step, status in faults.items()), name
            expected = faults[min(faults, key=ORDER.__getitem__)] if faults else 202
            # when
            _empty_bucket(tenant)
            fast = _through_the_fast_path(live_server_url, request)
            _empty_bucket(tenant)
            with django_db_blocker.unblock():
                view = _through_the_view(request)
            use_public()
            # then: the first step's answer, the same from both doors
            assert (fast.status_code, view.status_code) == (expected, expected), (name, fast.text, view.content)
            assert fast.headers["content-type"] == view["Content-Type"], name
            assert fast.json() == json.loads(view.content), name
            assert fast.headers.get("retry-after") == view.get("Retry-After"), name
    finally:
        get_redis().delete(key("quota", tenant))
