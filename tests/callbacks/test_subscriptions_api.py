"""The subscriptions API: shapes, validation as problem+json, tenant isolation."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from callbacks import services
from callbacks.models import Subscription
from callbacks.policy import DeliveryPolicy
from tests.callbacks.support import Receiver, insert_changes
from tests.conftest import Persona
from tests.factories import make_source

HOOK = "https://hooks.example.com/beastflow"


def _create(persona: Persona, body: Any) -> Any:
    return persona.client().post("/api/v1/subscriptions", body, format="json")


def _count(persona: Persona) -> int:
    with tenant_context(persona.tenant):
        return Subscription.objects.count()


def test_a_subscription_is_created_with_its_secret_shown_once_and_stored_encrypted(alice: Persona) -> None:
    # when
    created = _create(alice, {"url": HOOK})
    # then
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["secret"].startswith("cbsec_")
    assert body["status"] == "active" and body["breaker"] == "closed" and body["sources"] is None
    fetched = alice.client().get(f"/api/v1/subscriptions/{body['id']}").json()
    assert "secret" not in fetched and fetched["url"] == HOOK
    with tenant_context(alice.tenant):
        subscription = Subscription.objects.get(pk=body["id"])
        assert body["secret"] not in subscription.secret_encrypted
        assert services.subscription_secret(subscription) == body["secret"]


def test_a_new_subscription_starts_at_the_head_unless_from_seq_says_otherwise(alice: Persona) -> None:
    # given
    with tenant_context(alice.tenant):
        source, _ = make_source()
        seqs = [change["seq"] for change in insert_changes(source.pk, 3)]
    # when
    from_now = _create(alice, {"url": HOOK}).json()
    from_second = _create(alice, {"url": HOOK, "sources": [source.pk], "from_seq": seqs[1]}).json()
    # then
    assert from_now["cursor"] == seqs[-1]
    assert from_second["cursor"] == seqs[0] and from_second["sources"] == [source.pk]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://files.example.com/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "http:///no-host"}, "url"),
        ({"url": "http://example.com:port/"}, "url"),
        ({}, "url"),
        ({"url": HOOK, "sources": []}, "sources"),
        ({"url": HOOK, "sources": ["x"]}, "sources.0"),
        ({"url": HOOK, "sources": [987654321]}, "sources"),
        ({"url": HOOK, "from_seq": -1}, "from_seq"),
        ({"url": HOOK, "from_seq": 10**12}, "from_seq"),
        ({"url": HOOK, "source": [1]}, "source"),
    ],
)
def test_an_invalid_subscription_is_a_422_problem_and_nothing_is_stored(
    alice: Persona, body: dict[str, Any], field: str
) -> None:
    # when
    response = _create(alice, body)
    # then
    assert response.status_code == 422, response.json()
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422 and problem["title"] and problem["type"]
    assert field in {error["field"] for error in problem["errors"]}
    assert _count(alice) == 0


def test_a_body_that_is_not_an_object_is_a_400_problem(alice: Persona) -> None:
    response = _create(alice, ["http://example.com"])
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert _count(alice) == 0


def test_another_tenants_source_cannot_be_subscribed_to(alice: Persona, charlie: Persona) -> None:
    # given
    with tenant_context(charlie.tenant):
        globex_source, _ = make_source()
    # when
    response = _create(alice, {"url": HOOK, "sources": [globex_source.pk]})
    # then
    assert response.status_code == 422
    assert _count(alice) == 0


def test_the_list_pages_newest_first_with_a_cursor(alice: Persona) -> None:
    client = alice.client()
    ids = [_create(alice, {"url": f"{HOOK}/{n}"}).json()["id"] for n in range(5)]
    first = client.get("/api/v1/subscriptions?limit=2").json()
    second = client.get(f"/api/v1/subscriptions?limit=2&cursor={first['next_cursor']}").json()
    third = client.get(f"/api/v1/subscriptions?limit=2&cursor={second['next_cursor']}").json()
    assert [s["id"] for page in (first, second, third) for s in page["results"]] == list(reversed(ids))
    assert third["next_cursor"] is None
    assert all("secret" not in s for s in first["results"])


def test_deliveries_are_listed_newest_first(alice: Persona, receiver: Receiver) -> None:
    # given: two batches delivered
    with tenant_context(alice.tenant):
        source, _ = make_source()
    subscription_id = _create(alice, {"url": receiver.url, "sources": [source.pk]}).json()["id"]
    with tenant_context(alice.tenant):
        seqs = [change["seq"] for change in insert_changes(source.pk, 4)]
        services.subscription_deliver(
            subscription_id=subscription_id, now=timezone.now(), policy=DeliveryPolicy(batch_size=2)
        )
    # when
    page = alice.client().get(f"/api/v1/subscriptions/{subscription_id}/deliveries?limit=1").json()
    rest = alice.client().get(f"/api/v1/subscriptions/{subscription_id}/deliveries?cursor={page['next_cursor']}")
    # then
    deliveries = page["results"] + rest.json()["results"]
    assert [(d["first_seq"], d["last_seq"]) for d in deliveries] == [(seqs[2], seqs[3]), (seqs[0], seqs[1])]
    assert deliveries[0]["status"] == "succeeded" and deliveries[0]["http_status"] == 200
    assert deliveries[0]["attempt"] == 1 and deliveries[0]["count"] == 2


def test_a_replay_needs_a_valid_from_seq(alice: Persona) -> None:
    subscription_id = _create(alice, {"url": HOOK}).json()["id"]
    path = f"/api/v1/subscriptions/{subscription_id}/replay"
    for body in ({}, {"from_seq": "x"}, {"from_seq": -5}, {"from_seq": 10**12}):
        response = alice.client().post(path, body, format="json")
        assert response.status_code == 422, body
        assert response["Content-Type"] == "application/problem+json"


def test_a_deleted_subscription_is_gone(alice: Persona) -> None:
    subscription_id = _create(alice, {"url": HOOK}).json()["id"]
    assert alice.client().delete(f"/api/v1/subscriptions/{subscription_id}").status_code == 204
    assert alice.client().get(f"/api/v1/subscriptions/{subscription_id}").status_code == 404
    assert _count(alice) == 0
    for odd in ("x", "0", "99999999999999999999"):
        assert alice.client().get(f"/api/v1/subscriptions/{odd}").status_code == 404


def test_without_a_key_the_api_answers_401() -> None:
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/subscriptions").status_code == 401


def test_alice_cannot_see_or_touch_charlies_subscription(alice: Persona, charlie: Persona) -> None:
    # given
    created = _create(charlie, {"url": HOOK}).json()
    subscription_id = created["id"]
    base = f"/api/v1/subscriptions/{subscription_id}"
    client = alice.client()
    # when / then: every operation is a 404 for alice, as if it did not exist
    assert client.get(base).status_code == 404
    assert client.get(f"{base}/deliveries").status_code == 404
    assert client.post(f"{base}/replay", {"from_seq": 1}, format="json").status_code == 404
    assert client.post(f"{base}/enable").status_code == 404
    assert client.delete(base).status_code == 404
    assert client.get("/api/v1/subscriptions").json()["results"] == []
    # and charlie's subscription is untouched
    after = charlie.client().get(base)
    assert after.status_code == 200 and after.json()["cursor"] == created["cursor"]
