"""Upstreams' own webhooks at a source's ingest_url, through both front doors.

The Django path (test client, rolled-back transaction) and the raw ASGI fast
path of a real uvicorn (committed sources). Payloads are GitHub's published
examples (@octokit/webhooks-examples); signatures come from the upstreams' own
packages (@octokit/webhooks-methods, stripe, standardwebhooks) through
tests/upstream_packages.py. Shopify publishes no signing package usable here:
its requests are signed with Shopify's documented algorithm, written out below.
"""

from __future__ import annotations

import asyncio
import base64
import copy
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

from beastflow.tenancy import use_public
from engines import sources
from engines.connectors.mapping import parse_timestamp, to_microseconds
from engines.models import Change, Event, Record, Source, StreamState
from tests.conftest import Persona
from tests.factories import make_source
from tests.upstream_fixtures import upstream_fixture  # noqa: F401  (the `upstream` fixture)
from tests.upstream_packages import UpstreamSigner

GITHUB_SECRET = "gh-webhook-secret-0123"
STRIPE_SECRET = "whsec_stripe_test_5f1c2e"
SHOPIFY_SECRET = "shpss_9b8a7c6d5e4f"
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

MAPPINGS: dict[str, dict[str, Any]] = {
    # The github-issues push mapping (docs/push.md shows it).
    "github": {
        "filter": "headers.\"x-github-event\" == 'issues'",
        "id": 'headers."x-github-delivery"',
        "key": "body.issue.id",
        "version": "body.issue.updated_at",
        "op": "body.action == 'deleted' && 'delete' || 'upsert'",
        "data": "body.issue",
    },
    "stripe": {
        "filter": "starts_with(body.type || '', 'customer.')",
        "id": "body.id",
        "key": "body.data.object.id",
        "version": "body.created",
        "op": "body.type == 'customer.deleted' && 'delete' || 'upsert'",
        "data": "body.data.object",
        "occurred_at": "body.created",
    },
    "shopify": {
        "filter": "starts_with(headers.\"x-shopify-topic\" || '', 'orders/')",
        "id": 'headers."x-shopify-webhook-id"',
        "key": "body.id",
        "version": "body.updated_at",
    },
    "standard-webhooks": {
        "id": 'headers."webhook-id"',
        "key": "body.data.id",
        "version": "body.data.revision",
        "data": "body.data",
    },
}
SECRETS = {
    "github": GITHUB_SECRET,
    "stripe": STRIPE_SECRET,
    "shopify": SHOPIFY_SECRET,
    "standard-webhooks": STANDARD_SECRET,
}


def push_config(scheme: str, **overrides: Any) -> dict[str, Any]:
    return {"scheme": scheme, "secret": SECRETS[scheme], "mapping": MAPPINGS[scheme], **overrides}


def text(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def shopify_hmac(secret: str, body: str) -> str:
    """Shopify's documented algorithm: base64 of HMAC-SHA256(secret, raw body)."""
    return base64.b64encode(hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()).decode()


class Upstream:
    """Requests as each upstream sends them: its headers, its signature, its body."""

    def __init__(self, signer: UpstreamSigner) -> None:
        self.signer = signer

    def github(
        self, event: str, payload: Any, *, delivery: str | None = None, secret: str = GITHUB_SECRET
    ) -> tuple[str, dict[str, str]]:
        body = text(payload)
        return body, {
            "content-type": "application/json",
            "user-agent": "GitHub-Hookshot/044aadd",
            "x-github-event": event,
            "x-github-delivery": delivery or str(uuid.uuid4()),
            "x-github-hook-id": "292430182",
            "x-hub-signature-256": self.signer.sign_github(secret, body),
        }

    def stripe(
        self, payload: Any, *, timestamp: int | None = None, secret: str = STRIPE_SECRET
    ) -> tuple[str, dict[str, str]]:
        body = text(payload)
        stamp = int(time.time()) if timestamp is None else timestamp
        return body, {
            "content-type": "application/json; charset=utf-8",
            "stripe-signature": self.signer.stripe_header(secret, body, stamp),
        }

    def standard(self, payload: Any, *, message_id: str, timestamp: int | None = None) -> tuple[str, dict[str, str]]:
        body = text(payload)
        stamp = int(time.time()) if timestamp is None else timestamp
        headers = self.signer.standard_webhooks_headers(STANDARD_SECRET, message_id, stamp, body)
        return body, {"content-type": "application/json", **headers}

    def shopify(
        self, topic: str, payload: Any, *, webhook_id: str, secret: str = SHOPIFY_SECRET
    ) -> tuple[str, dict[str, str]]:
        body = text(payload)
        return body, {
            "content-type": "application/json",
            "x-shopify-topic": topic,
            "x-shopify-webhook-id": webhook_id,
            "x-shopify-shop-domain": "example.myshopify.com",
            "x-shopify-hmac-sha256": shopify_hmac(secret, body),
        }


@pytest.fixture
def send(upstream: UpstreamSigner) -> Upstream:
    return Upstream(upstream)


def stripe_customer_event(
    event_id: str, customer_id: str, created: int, kind: str = "customer.updated"
) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2023-10-16",
        "created": created,
        "livemode": False,
        "type": kind,
        "data": {
            "object": {
                "id": customer_id,
                "object": "customer",
                "email": f"{customer_id}@example.com",
                "created": 1_700_000_000,
            }
        },
    }


def unique_issues(upstream: UpstreamSigner) -> list[dict[str, Any]]:
    """GitHub's 29 `issues` examples reuse 3 issue ids: each gets its own here, to be a record of its own."""
    examples = copy.deepcopy(upstream.github_examples("issues"))
    for n, example in enumerate(examples):
        example["issue"]["id"] = 9_000_000 + n
    return examples


# Django path -------------------------------------------------------------------


def django_post(source_id: int, body: str, headers: dict[str, str]) -> Any:
    rest = {k: v for k, v in headers.items() if k != "content-type"}
    return Client().post(
        f"/api/v1/sources/{source_id}/events",
        data=body.encode(),
        content_type=headers.get("content-type", "application/json"),
        headers=rest,
    )


def counts(persona: Persona, source_id: int) -> tuple[int, int, int]:
    with tenant_context(persona.tenant):
        return (
            Event.objects.filter(source_id=source_id).count(),
            Record.objects.filter(source_id=source_id).count(),
            Change.objects.filter(source_id=source_id).count(),
        )


def native_source(persona: Persona, scheme: str, **push: Any) -> int:
    with tenant_context(persona.tenant):
        source, _ = make_source(f"native-{scheme}-{uuid.uuid4().hex[:6]}", push=push_config(scheme, **push))
    return source.pk


def test_a_github_issues_delivery_is_committed_as_its_issue(
    alice: Persona, send: Upstream, upstream: UpstreamSigner
) -> None:
    # given
    source_id = native_source(alice, "github")
    example = upstream.github_examples("issues")[0]
    body, headers = send.github("issues", example, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    # when
    response = django_post(source_id, body, headers)
    # then
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "duplicates": 0, "ignored": 0}
    record = alice.client().get(f"/api/v1/sources/{source_id}/records/{example['issue']['id']}").json()
    assert record["data"] == example["issue"]
    assert record["version"] == to_microseconds(parse_timestamp(example["issue"]["updated_at"]))
    feed = alice.client().get(f"/api/v1/changes?after=0&source={source_id}").json()["results"]
    assert [(c["event_id"], c["origin"]) for c in feed] == [("72d3162e-cc78-11e3-81ab-4c9367dc0958", "push")]


def test_a_redelivered_github_delivery_is_a_duplicate(alice: Persona, send: Upstream, upstream: UpstreamSigner) -> None:
    source_id = native_source(alice, "github")
    body, headers = send.github("issues", upstream.github_examples("issues")[0], delivery="d-1")
    first = django_post(source_id, body, headers)
    again = django_post(source_id, body, headers)
    assert first.json() == {"accepted": 1, "duplicates": 0, "ignored": 0}
    assert again.status_code == 202 and again.json() == {"accepted": 0, "duplicates": 1, "ignored": 0}
    assert counts(alice, source_id) == (1, 1, 1)


def test_github_pings_are_answered_and_store_nothing(alice: Persona, send: Upstream, upstream: UpstreamSigner) -> None:
    source_id = native_source(alice, "github")
    for ping in upstream.github_examples("ping"):
        response = django_post(source_id, *send.github("ping", ping))
        assert response.status_code == 202
        assert response.json() == {"accepted": 0, "duplicates": 0, "ignored": 1}
    assert counts(alice, source_id) == (0, 0, 0)


def test_an_older_issue_version_arriving_late_changes_nothing(
    alice: Persona, send: Upstream, upstream: UpstreamSigner
) -> None:
    # given: the issue reopened in 2021, then a delivery of its opening in 2019 arrives late
    examples = upstream.github_examples("issues")
    reopened = next(e for e in examples if e["action"] == "reopened")
    opened = next(e for e in examples if e["action"] == "opened" and e["issue"]["id"] == reopened["issue"]["id"])
    assert opened["issue"]["updated_at"] < reopened["issue"]["updated_at"]
    source_id = native_source(alice, "github")
    # when
    first = django_post(source_id, *send.github("issues", reopened))
    late = django_post(source_id, *send.github("issues", opened))
    # then
    assert first.json()["accepted"] == late.json()["accepted"] == 1
    record = alice.client().get(f"/api/v1/sources/{source_id}/records/{reopened['issue']['id']}").json()
    assert record["data"] == reopened["issue"]
    assert counts(alice, source_id) == (2, 1, 1)  # both events kept, one change


def test_bad_github_signatures_are_401_and_store_nothing(
    alice: Persona, send: Upstream, upstream: UpstreamSigner
) -> None:
    source_id = native_source(alice, "github")
    example = upstream.github_examples("issues")[0]
    body, headers = send.github("issues", example)
    _, wrong_secret = send.github("issues", example, secret="not the secret")
    missing = {k: v for k, v in headers.items() if k != "x-hub-signature-256"}
    cases = {
        "wrong secret": django_post(source_id, body, wrong_secret),
        "tampered body": django_post(source_id, body.replace(example["action"], "deleted", 1), headers),
        "missing header": django_post(source_id, body, missing),
        "our signature instead": django_post(
            source_id, body, {**missing, "x-beastflow-signature": "sha256=" + "0" * 64}
        ),
    }
    for name, response in cases.items():
        assert response.status_code == 401, name
        assert response["Content-Type"] == "application/problem+json", name
    assert counts(alice, source_id) == (0, 0, 0)


def test_a_mapping_that_finds_no_key_is_422_naming_the_field_and_counted_as_a_push_error(
    alice: Persona, send: Upstream, upstream: UpstreamSigner
) -> None:
    # given: a ping's body sent as an `issues` event: no issue in it
    source_id = native_source(alice, "github")
    body, headers = send.github("issues", upstream.github_examples("ping")[0])
    # when
    response = django_post(source_id, body, headers)
    # then
    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert {"push.mapping.key", "push.mapping.version", "push.mapping.data"} <= fields
    assert counts(alice, source_id) == (0, 0, 0)
    with tenant_context(alice.tenant):
        assert StreamState.objects.get(source_id=source_id).push_errors_total == 1


def test_a_native_source_still_takes_api_key_pushes_of_beastflow_events(alice: Persona) -> None:
    source_id = native_source(alice, "github")
    event = {"id": "manual-1", "type": "upsert", "key": "1", "version": 1, "data": {"title": "by hand"}}
    response = alice.client().post(f"/api/v1/sources/{source_id}/events", event, format="json")
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "duplicates": 0}


def test_stripe_events_are_verified_with_their_replay_window(alice: Persona, send: Upstream) -> None:
    source_id = native_source(alice, "stripe", tolerance_s=300)
    now = int(time.time())
    fresh = django_post(source_id, *send.stripe(stripe_customer_event("evt_1", "cus_A", now)))
    duplicate = django_post(source_id, *send.stripe(stripe_customer_event("evt_1", "cus_A", now)))
    expired = django_post(source_id, *send.stripe(stripe_customer_event("evt_2", "cus_B", now), timestamp=now - 400))
    future = django_post(source_id, *send.stripe(stripe_customer_event("evt_3", "cus_C", now), timestamp=now + 400))
    wrong = django_post(source_id, *send.stripe(stripe_customer_event("evt_4", "cus_D", now), secret="whsec_other"))
    invoice = stripe_customer_event("evt_5", "in_1", now, kind="invoice.paid")
    ignored = django_post(source_id, *send.stripe(invoice))
    deleted = django_post(source_id, *send.stripe(stripe_customer_event("evt_6", "cus_A", now + 1, "customer.deleted")))
    assert fresh.status_code == 202 and fresh.json() == {"accepted": 1, "duplicates": 0, "ignored": 0}
    assert duplicate.json() == {"accepted": 0, "duplicates": 1, "ignored": 0}
    assert [expired.status_code, future.status_code, wrong.status_code] == [401, 401, 401]
    assert "old" in expired.json()["detail"] and "future" in future.json()["detail"]
    assert ignored.json() == {"accepted": 0, "duplicates": 0, "ignored": 1}
    assert deleted.json()["accepted"] == 1
    assert alice.client().get(f"/api/v1/sources/{source_id}/records/cus_A").status_code == 404
    assert counts(alice, source_id) == (2, 1, 2)


def test_standard_webhooks_are_verified_with_their_replay_window(alice: Persona, send: Upstream) -> None:
    source_id = native_source(alice, "standard-webhooks", tolerance_s=60)
    now = int(time.time())
    payload = {"type": "contact.updated", "timestamp": "2026-11-26T10:00:00Z", "data": {"id": "c-1", "revision": 3}}
    ok = django_post(source_id, *send.standard(payload, message_id="msg_1"))
    expired = django_post(source_id, *send.standard(payload, message_id="msg_2", timestamp=now - 61))
    future = django_post(source_id, *send.standard(payload, message_id="msg_3", timestamp=now + 61))
    body, headers = send.standard(payload, message_id="msg_4")
    tampered = django_post(source_id, body.replace('"revision":3', '"revision":4'), headers)
    missing = django_post(source_id, body, {k: v for k, v in headers.items() if k != "webhook-timestamp"})
    assert ok.status_code == 202 and ok.json()["accepted"] == 1
    assert [r.status_code for r in (expired, future, tampered, missing)] == [401] * 4
    assert counts(alice, source_id) == (1, 1, 1)


def test_shopify_orders_are_verified_with_shopifys_published_algorithm(alice: Persona, send: Upstream) -> None:
    source_id = native_source(alice, "shopify")
    order = {"id": 450789469, "email": "bob.norman@mail.example.com", "updated_at": "2026-11-26T10:00:00-05:00"}
    ok = django_post(source_id, *send.shopify("orders/updated", order, webhook_id="w-1"))
    wrong = django_post(source_id, *send.shopify("orders/updated", order, webhook_id="w-2", secret="shpss_other"))
    body, headers = send.shopify("orders/updated", order, webhook_id="w-3")
    tampered = django_post(source_id, body.replace("bob", "eve"), headers)
    product = django_post(source_id, *send.shopify("products/update", {"id": 1}, webhook_id="w-4"))
    assert ok.status_code == 202 and ok.json()["accepted"] == 1
    assert [wrong.status_code, tampered.status_code] == [401, 401]
    assert product.json()["ignored"] == 1
    assert counts(alice, source_id) == (1, 1, 1)


def test_a_source_whose_secret_changed_refuses_the_old_one_at_once_on_this_process(
    alice: Persona, send: Upstream, upstream: UpstreamSigner, django_capture_on_commit_callbacks: Any
) -> None:
    source_id = native_source(alice, "github")
    example = upstream.github_examples("issues")[0]
    assert django_post(source_id, *send.github("issues", example)).status_code == 202
    with django_capture_on_commit_callbacks(execute=True):  # the source cache is told after the commit
        patched = alice.client().patch(
            f"/api/v1/sources/{source_id}", {"push": push_config("github", secret="rotated")}, format="json"
        )
    assert patched.status_code == 200, patched.content
    assert django_post(source_id, *send.github("issues", example)).status_code == 401
    assert django_post(source_id, *send.github("issues", example, secret="rotated")).status_code == 202


def test_without_a_key_an_unknown_source_answers_as_before(db: None) -> None:
    body = b'{"zen": "Design for failure."}'
    response = Client().post("/api/v1/sources/987654321/events", data=body, content_type="application/json",
                             headers={"x-github-event": "ping", "x-hub-signature-256": "sha256=00"})  # fmt: skip
    assert response.status_code == 401


# The fast path (real uvicorn) ------------------------------------------------------


@pytest.fixture
def committed_native(personas: dict[str, Persona], django_db_blocker: Any) -> Iterator[Any]:
    """Make committed native sources in acme (the live server sees them); removed after."""
    made: list[int] = []

    def make(scheme: str, **push: Any) -> int:
        with django_db_blocker.unblock(), tenant_context(personas["alice"].tenant):
            source, _ = make_source(f"live-{scheme}-{uuid.uuid4().hex[:8]}", push=push_config(scheme, **push))
        made.append(source.pk)
        return int(source.pk)

    yield make
    with django_db_blocker.unblock(), tenant_context(personas["alice"].tenant):
        for source_id in made:
            found = Source.objects.filter(pk=source_id).first()
            if found is not None:
                sources.source_delete(source=found)
    use_public()


def live_counts(personas: dict[str, Persona], django_db_blocker: Any, source_id: int) -> dict[str, Any]:
    with django_db_blocker.unblock(), tenant_context(personas["alice"].tenant):
        return {
            "events": Event.objects.filter(source_id=source_id).count(),
            "live": dict(Record.objects.filter(source_id=source_id, deleted=False).values_list("key", "version")),
            "deleted": Record.objects.filter(source_id=source_id, deleted=True).count(),
            "changes": Change.objects.filter(source_id=source_id).count(),
            "push_errors": StreamState.objects.get(source_id=source_id).push_errors_total,
        }


async def _post_all(url: str, requests: list[tuple[str, dict[str, str]]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30) as client:
        return await asyncio.gather(*(client.post(url, content=body.encode(), headers=h) for body, h in requests))


def test_the_fast_path_commits_every_github_issues_example_sent_at_once(
    live_server_url: str, committed_native: Any, send: Upstream, upstream: UpstreamSigner,
    personas: dict[str, Persona], django_db_blocker: Any,
) -> None:  # fmt: skip
    # given: the 29 examples, each its own issue, each its own delivery, signed by octokit
    source_id = committed_native("github")
    url = f"{live_server_url}/api/v1/sources/{source_id}/events"
    examples = unique_issues(upstream)
    requests = [send.github("issues", example) for example in examples]
    # when
    responses = asyncio.run(_post_all(url, requests))
    # then
    assert [r.status_code for r in responses] == [202] * len(examples)
    assert all(r.json() == {"accepted": 1, "duplicates": 0, "ignored": 0} for r in responses)
    state = live_counts(personas, django_db_blocker, source_id)
    upserts = {str(e["issue"]["id"]): e["issue"]["updated_at"] for e in examples if e["action"] != "deleted"}
    assert state["events"] == len(examples)
    assert state["live"] == {key: to_microseconds(parse_timestamp(at)) for key, at in upserts.items()}


def test_the_fast_path_answers_native_requests_like_the_django_path(
    live_server_url: str, committed_native: Any, send: Upstream, upstream: UpstreamSigner,
    personas: dict[str, Persona], django_db_blocker: Any,
) -> None:  # fmt: skip
    github = committed_native("github")
    stripe = committed_native("stripe")
    standard = committed_native("standard-webhooks")
    shopify = committed_native("shopify")

    def post(source_id: int, request: tuple[str, dict[str, str]]) -> httpx.Response:
        body, headers = request
        return httpx.post(
            f"{live_server_url}/api/v1/sources/{source_id}/events", content=body.encode(), headers=headers
        )

    examples = upstream.github_examples("issues")
    reopened = next(e for e in examples if e["action"] == "reopened")
    opened = next(e for e in examples if e["action"] == "opened" and e["issue"]["id"] == reopened["issue"]["id"])
    now = int(time.time())
    late, early = now - 400, now + 400  # well past the 300 s window, whatever the test took so far
    delivery = send.github("issues", reopened, delivery="live-d-1")
    body, headers = send.github("issues", opened)
    order = {"id": 450789469, "updated_at": "2026-11-26T10:00:00-05:00"}
    standard_payload = {"type": "x", "data": {"id": "c-1", "revision": 1}}
    cases: dict[str, tuple[httpx.Response, int, dict[str, int] | None]] = {
        "github ok": (post(github, delivery), 202, {"accepted": 1, "duplicates": 0, "ignored": 0}),
        "github again": (post(github, delivery), 202, {"accepted": 0, "duplicates": 1, "ignored": 0}),
        "github late": (post(github, (body, headers)), 202, {"accepted": 1, "duplicates": 0, "ignored": 0}),
        "github ping": (post(github, send.github("ping", upstream.github_examples("ping")[0])), 202,
                        {"accepted": 0, "duplicates": 0, "ignored": 1}),
        "github tampered": (post(github, (body.replace("opened", "closed", 1), headers)), 401, None),
        "github unsigned": (post(github, (body, {"x-github-event": "issues"})), 401, None),
        "github no key": (post(github, send.github("issues", upstream.github_examples("ping")[0])), 422, None),
        "stripe ok": (post(stripe, send.stripe(stripe_customer_event("evt_l1", "cus_L", now))), 202, None),
        "stripe expired": (post(stripe, send.stripe(stripe_customer_event("e2", "c", now), timestamp=late)), 401, None),
        "stripe future": (post(stripe, send.stripe(stripe_customer_event("e3", "c", now), timestamp=early)), 401, None),
        "standard ok": (post(standard, send.standard(standard_payload, message_id="m-1")), 202, None),
        "standard old": (post(standard, send.standard(standard_payload, message_id="m2", timestamp=late)), 401, None),
        "shopify ok": (post(shopify, send.shopify("orders/create", order, webhook_id="s-1")), 202, None),
        "shopify wrong": (post(shopify, send.shopify("orders/create", order, webhook_id="s-2", secret="x")), 401, None),
    }  # fmt: skip
    for name, (response, status, answer) in cases.items():
        assert response.status_code == status, (name, response.text)
        if answer is not None:
            assert response.json() == answer, name
        if status >= 400:
            assert response.headers["content-type"] == "application/problem+json", name
    no_key = cases["github no key"][0].json()
    assert "push.mapping.key" in {error["field"] for error in no_key["errors"]}
    state = live_counts(personas, django_db_blocker, github)
    assert state["events"] == 2 and state["changes"] == 1 and state["push_errors"] == 1
    assert state["live"] == {
        str(reopened["issue"]["id"]): to_microseconds(parse_timestamp(reopened["issue"]["updated_at"]))
    }
    assert [live_counts(personas, django_db_blocker, s)["events"] for s in (stripe, standard, shopify)] == [1, 1, 1]


SIGNATURE_HEADERS = {
    "github": ("x-hub-signature-256",),
    "stripe": ("stripe-signature",),
    "shopify": ("x-shopify-hmac-sha256",),
    "standard-webhooks": ("webhook-id", "webhook-timestamp", "webhook-signature"),
}


def signed_request(send: Upstream, scheme: str, *, secret: str | None = None) -> tuple[str, dict[str, str]]:
    """One valid request of `scheme` (with the source's secret unless another is given)."""
    now = int(time.time())
    if scheme == "github":
        return send.github("issues", {"action": "opened", "issue": {"id": 1, "updated_at": "2026-11-26T10:00:00Z"}},
                           secret=secret or GITHUB_SECRET)  # fmt: skip
    if scheme == "stripe":
        return send.stripe(stripe_customer_event("evt_s", "cus_S", now), secret=secret or STRIPE_SECRET)
    if scheme == "shopify":
        order = {"id": 7, "updated_at": "2026-11-26T10:00:00Z"}
        return send.shopify("orders/create", order, webhook_id="w", secret=secret or SHOPIFY_SECRET)
    body, headers = send.standard({"type": "t", "data": {"id": "c", "revision": 1}}, message_id="m")
    if secret is not None:  # the reference library signs with another whsec_ secret
        stamp = int(headers["webhook-timestamp"])
        other = send.signer.standard_webhooks_headers("whsec_" + base64.b64encode(b"x" * 24).decode(), "m", stamp, body)
        headers = {**headers, **other}
    return body, headers


@pytest.mark.parametrize("scheme", ["github", "stripe", "shopify", "standard-webhooks"])
def test_every_scheme_refuses_a_wrong_secret_a_tampered_body_and_missing_headers(
    alice: Persona, send: Upstream, scheme: str
) -> None:
    # given
    source_id = native_source(alice, scheme)
    body, headers = signed_request(send, scheme)
    # when
    answers = {
        "wrong secret": django_post(source_id, *signed_request(send, scheme, secret="whsec_" + "b" * 32)),
        "tampered body": django_post(source_id, body.replace("}", ', "extra": 1}', 1), headers),
        **{
            f"no {name}": django_post(source_id, body, {k: v for k, v in headers.items() if k != name})
            for name in SIGNATURE_HEADERS[scheme]
        },
    }
    valid = django_post(source_id, body, headers)
    # then
    for name, response in answers.items():
        assert response.status_code == 401, (scheme, name, response.content)
        assert response["Content-Type"] == "application/problem+json", name
    assert valid.status_code == 202, valid.content  # the same request, untouched, is taken
    assert counts(alice, source_id) == (1, 1, 1)
