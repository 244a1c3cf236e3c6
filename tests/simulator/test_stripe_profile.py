"""The simulator's `stripe` profile over HTTP: the Events and Customers lists and signed customer.* webhooks."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulator.runner import SimulatorHandle, start_in_thread
from tests.simulator.support import NativeReceiver, serve_asgi, wait_for
from tests.upstream_fixtures import upstream_fixture  # noqa: F401  (the `upstream` fixture)
from tests.upstream_packages import UpstreamSigner

KEY = "sk_test_simulated"
SECRET = "whsec_stripe_simulated"
DATA = {"status": "new", "qty": 1, "price_cents": 100, "note": ""}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with start_in_thread(token=KEY, seed=9, profile="stripe") as handle:
        yield handle


@pytest.fixture
def stripe(sim: SimulatorHandle) -> Iterator[httpx.Client]:
    sim.sim.reset(dataset=True)
    with httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=3.0) as client:
        yield client
    sim.sim.reset(dataset=True)


def walk(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every page by starting_after, as Stripe's clients page."""
    out: list[dict[str, Any]] = []
    query = dict(params)
    while True:
        body = client.get(path, params=query).json()
        assert body["object"] == "list" and body["url"] == path
        out += body["data"]
        if not body["has_more"]:
            return out
        query["starting_after"] = body["data"][-1]["id"]


def test_events_are_stripe_events_listed_newest_first(sim: SimulatorHandle, stripe: httpx.Client) -> None:
    # given: creates, updates and deletes
    sim.sim.mutate(count=25)
    sim.sim.mutate(count=5, delete=True)
    # when
    events = walk(stripe, "/v1/events", limit=7)
    # then
    assert len(events) == 30 == len({e["id"] for e in events})
    assert all(re.fullmatch(r"evt_[0-9A-Za-z]{24}", e["id"]) for e in events)
    assert [e["created"] for e in events] == sorted((e["created"] for e in events), reverse=True)
    assert {e["type"] for e in events} <= {"customer.created", "customer.updated", "customer.deleted"}
    assert sum(e["type"] == "customer.deleted" for e in events) == 5
    for event in events:
        assert event["object"] == "event" and isinstance(event["created"], int)
        customer = event["data"]["object"]
        assert customer["object"] == "customer" and customer["id"].startswith("cus_")
        if event["type"] == "customer.updated":
            assert isinstance(event["data"]["previous_attributes"], dict)


def test_events_filter_by_type_and_created(sim: SimulatorHandle, stripe: httpx.Client) -> None:
    # given: one customer changed three times (each change stamped a second on)
    for qty in (1, 2, 3):
        sim.dataset.upsert("rec-000001", DATA | {"qty": qty})
    created = stripe.get("/v1/events", params={"type": "customer.created"}).json()["data"]
    updated = stripe.get("/v1/events", params={"type": "customer.*", "limit": 100}).json()["data"]
    # then
    assert [e["type"] for e in created] == ["customer.created"]
    assert [e["type"] for e in updated] == ["customer.updated", "customer.updated", "customer.created"]
    newest = updated[0]["created"]
    recent = stripe.get("/v1/events", params={"created[gte]": newest}).json()["data"]
    assert [e["id"] for e in recent] == [updated[0]["id"]]
    assert updated[0]["data"]["previous_attributes"] == {
        "metadata": {"status": "new", "seats": "2", "mrr_cents": "100"},
        "next_invoice_sequence": 2,
    }


def test_silent_changes_make_no_event_but_show_in_the_customers_list(
    sim: SimulatorHandle, stripe: httpx.Client
) -> None:
    sim.dataset.seed_records(12)
    sim.dataset.upsert("rec-000003", DATA | {"note": "café au lait"}, silent=True)
    sim.dataset.delete("rec-000004", silent=True)
    events = walk(stripe, "/v1/events", limit=100)
    customers = walk(stripe, "/v1/customers", limit=5)
    assert len(events) == 12
    assert len(customers) == 11 == len({c["id"] for c in customers})
    ids = {c["id"]: c for c in customers}
    assert ids[sim.sim.profile.upstream_key("rec-000003")]["description"] == "café au lait"
    assert sim.sim.profile.upstream_key("rec-000004") not in ids
    assert [(c["created"], c["id"]) for c in customers] == sorted(
        ((c["created"], c["id"]) for c in customers), reverse=True
    )


def test_customers_pages_by_ending_before_too(sim: SimulatorHandle, stripe: httpx.Client) -> None:
    sim.dataset.seed_records(8)
    everyone = walk(stripe, "/v1/customers", limit=100)
    newer = stripe.get("/v1/customers", params={"ending_before": everyone[5]["id"], "limit": 2}).json()
    assert [c["id"] for c in newer["data"]] == [everyone[3]["id"], everyone[4]["id"]] and newer["has_more"]
    one = stripe.get(f"/v1/customers/{everyone[0]['id']}")
    assert one.status_code == 200 and one.json() == everyone[0]


def test_bad_parameters_get_stripe_errors(stripe: httpx.Client) -> None:
    too_many = stripe.get("/v1/events", params={"limit": 101})
    unknown = stripe.get("/v1/events", params={"starting_after": "evt_nope"})
    missing = stripe.get("/v1/customers/cus_nope")
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "limit"
    assert unknown.status_code == 400 and unknown.json()["error"]["type"] == "invalid_request_error"
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "resource_missing"


def test_the_secret_key_is_required_as_bearer_or_basic(sim: SimulatorHandle) -> None:
    url = f"{sim.base_url}/v1/customers"
    basic = base64.b64encode(f"{KEY}:".encode()).decode()
    assert httpx.get(url, headers={"Authorization": f"Basic {basic}"}).status_code == 200
    refused = httpx.get(url, headers={"Authorization": "Bearer sk_test_wrong"})
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "invalid_request_error"


def test_faults_apply_to_the_stripe_api(sim: SimulatorHandle, stripe: httpx.Client) -> None:
    sim.sim.mutate(count=10)
    sim.faults.update({"http_429_rate": 1.0})
    limited = stripe.get("/v1/events")
    assert limited.status_code == 429 and limited.json()["error"]["type"] == "rate_limit_error"
    sim.faults.update({"http_429_rate": 0.0, "outage": "feed"})
    assert stripe.get("/v1/customers").status_code == 503
    sim.faults.update({"outage": "none", "schema_break_rate": 1.0})
    broken = stripe.get("/v1/events").json()["data"]
    assert broken and all(not isinstance(e["created"], int) or "id" not in e["data"].get("object", {}) for e in broken)


# -- webhooks -----------------------------------------------------------------------------


@pytest.fixture
def hooks() -> Iterator[tuple[SimulatorHandle, NativeReceiver]]:
    receiver = NativeReceiver()
    with (
        serve_asgi(receiver) as url,
        start_in_thread(
            ingest_url=f"{url}/hook", webhook_secret=SECRET, token=KEY, profile="stripe", run_id="st1"
        ) as handle,
    ):
        yield handle, receiver


def test_webhooks_are_events_signed_as_stripe_signs(
    hooks: tuple[SimulatorHandle, NativeReceiver], upstream: UpstreamSigner
) -> None:
    # given
    handle, receiver = hooks
    # when
    handle.sim.mutate(count=6)
    handle.sim.mutate(count=2, delete=True)
    wait_for(lambda: handle.sim.push.events_sent == 8)
    # then: each is one event, the one the Events API lists
    deliveries = receiver.received()
    bodies = [d.json() for d in deliveries]
    assert len(bodies) == 8 and all(b["object"] == "event" for b in bodies)
    with httpx.Client(base_url=handle.base_url, headers={"Authorization": f"Bearer {KEY}"}) as client:
        listed = walk(client, "/v1/events", limit=100)
    assert bodies == list(reversed(listed))
    header = deliveries[0].headers["stripe-signature"]
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header) and abs(int(header[2:12]) - time.time()) < 60
    # signed as the stripe package's own test-header helper signs, at the same t
    for delivery in deliveries:
        sent = delivery.headers["stripe-signature"]
        stamp = int(sent.split(",")[0].removeprefix("t="))
        assert sent == upstream.stripe_header(SECRET, delivery.body.decode(), stamp)
    assert header != upstream.stripe_header("whsec_other", deliveries[0].body.decode(), int(header[2:12]))


def test_a_dropped_event_is_still_listed(hooks: tuple[SimulatorHandle, NativeReceiver]) -> None:
    handle, receiver = hooks
    handle.faults.update({"drop_rate": 1.0})
    handle.sim.mutate(count=3)
    wait_for(lambda: handle.sim.push.dropped == 3)
    with httpx.Client(base_url=handle.base_url, headers={"Authorization": f"Bearer {KEY}"}) as client:
        assert len(walk(client, "/v1/events")) == 3
    assert receiver.received() == []
