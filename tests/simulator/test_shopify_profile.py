"""The simulator's `shopify` profile over HTTP: the orders list with page_info cursors and orders/* webhooks.

Shopify publishes no small signer package (its verifier lives in the whole
@shopify/shopify-api SDK), so the webhook HMAC is checked here as Shopify's
documentation states it: base64 of HMAC-SHA256(secret, raw body).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from simulator.runner import SimulatorHandle, start_in_thread
from tests.simulator.support import NativeReceiver, serve_asgi, wait_for

TOKEN = "shpat_simulated"
SECRET = "shopify app secret"
ORDERS = "/admin/api/2024-01/orders.json"
DATA = {"status": "paid", "qty": 2, "price_cents": 1250, "note": ""}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with start_in_thread(token=TOKEN, seed=3, profile="shopify") as handle:
        yield handle


@pytest.fixture
def shop(sim: SimulatorHandle) -> Iterator[httpx.Client]:
    sim.sim.reset(dataset=True)
    sim.sim.profile.configure({"rate_limit": 40, "rate_window_s": 20})
    with httpx.Client(base_url=sim.base_url, headers={"X-Shopify-Access-Token": TOKEN}, timeout=3.0) as client:
        yield client
    sim.sim.reset(dataset=True)


def walk(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = client.get(ORDERS, params=params)
    orders: list[dict[str, Any]] = []
    while True:
        assert response.status_code == 200, response.text
        orders += response.json()["orders"]
        following = response.links.get("next")
        if following is None:
            return orders
        response = client.get(following["url"])


def test_orders_are_listed_in_updated_order_by_page_info_cursors(sim: SimulatorHandle, shop: httpx.Client) -> None:
    sim.dataset.seed_records(23)
    orders = walk(shop, status="any", limit=5, order="updated_at asc")
    assert len(orders) == 23 == len({o["id"] for o in orders})
    stamps = [(datetime.fromisoformat(o["updated_at"]), o["id"]) for o in orders]
    assert stamps == sorted(stamps)
    order = orders[0]
    assert isinstance(order["id"], int) and order["name"].startswith("#")
    assert order["updated_at"].endswith("-05:00") and order["total_price"] == f"{float(order['total_price']):.2f}"
    assert order["line_items"][0]["quantity"] >= 1
    # page_info carries the filters: another filter beside it is refused, as Shopify does
    first = shop.get(ORDERS, params={"status": "any", "limit": 5})
    cursor = first.links["next"]["url"].split("page_info=")[1]
    refused = shop.get(ORDERS, params={"page_info": cursor, "status": "any"})
    assert refused.status_code == 400


def test_an_order_updated_while_paging_is_not_skipped(sim: SimulatorHandle, shop: httpx.Client) -> None:
    sim.dataset.seed_records(10)
    first = shop.get(ORDERS, params={"status": "any", "limit": 4, "order": "updated_at asc"})
    seen = [o["id"] for o in first.json()["orders"]]
    # when: an order of a later page is updated (it moves to the end)
    sim.dataset.upsert("rec-000007", DATA)
    response = shop.get(first.links["next"]["url"])
    while True:
        seen += [o["id"] for o in response.json()["orders"]]
        if "next" not in response.links:
            break
        response = shop.get(response.links["next"]["url"])
    assert set(seen) == {int(sim.sim.profile.upstream_key(f"rec-{i:06d}")) for i in range(10)}


def test_status_and_updated_at_min_filter(sim: SimulatorHandle, shop: httpx.Client) -> None:
    sim.dataset.seed_records(6)
    for _ in range(3):  # each change stamped a second on
        sim.dataset.upsert("rec-000002", DATA | {"status": "cancelled"})
    hot = int(sim.sim.profile.upstream_key("rec-000002"))
    cancelled = {o["id"]: o for o in walk(shop, status="cancelled")}
    assert hot in cancelled and all(o["cancelled_at"] for o in cancelled.values())
    recent = walk(shop, status="any", updated_at_min=cancelled[hot]["updated_at"])
    assert [o["id"] for o in recent] == [hot]
    assert not set(cancelled) & {o["id"] for o in walk(shop)}  # status=open by default


def test_access_token_and_the_call_limit(sim: SimulatorHandle, shop: httpx.Client) -> None:
    wrong = httpx.get(f"{sim.base_url}{ORDERS}", headers={"X-Shopify-Access-Token": "nope"})
    assert wrong.status_code == 401 and "Invalid API key" in wrong.json()["errors"]
    sim.sim.profile.configure({"rate_limit": 2, "rate_window_s": 30})
    answers = [shop.get(ORDERS) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[1].headers["x-shopify-shop-api-call-limit"] == "2/2"
    assert int(answers[2].headers["retry-after"]) >= 1


@pytest.fixture
def hooks() -> Iterator[tuple[SimulatorHandle, NativeReceiver]]:
    receiver = NativeReceiver()
    with (
        serve_asgi(receiver) as url,
        start_in_thread(ingest_url=f"{url}/hook", webhook_secret=SECRET, token=TOKEN, profile="shopify") as handle,
    ):
        yield handle, receiver


def test_webhooks_carry_topics_and_shopifys_hmac(hooks: tuple[SimulatorHandle, NativeReceiver]) -> None:
    handle, receiver = hooks
    handle.dataset.upsert("rec-000001", DATA)
    handle.dataset.upsert("rec-000001", DATA | {"status": "shipped"})
    handle.dataset.delete("rec-000001")
    wait_for(lambda: handle.sim.push.events_sent == 3)
    deliveries = receiver.received()
    assert [d.headers["x-shopify-topic"] for d in deliveries] == ["orders/create", "orders/updated", "orders/delete"]
    order_id = int(handle.sim.profile.upstream_key("rec-000001"))
    assert deliveries[2].json() == {"id": order_id}  # Shopify's delete carries the id only
    assert deliveries[1].json()["fulfillment_status"] == "fulfilled"
    triggered = [datetime.fromisoformat(d.headers["x-shopify-triggered-at"]) for d in deliveries]
    assert triggered == sorted(triggered) and len(set(triggered)) == 3
    for delivery in deliveries:
        expected = base64.b64encode(hmac.new(SECRET.encode(), delivery.body, hashlib.sha256).digest()).decode()
        assert delivery.headers["x-shopify-hmac-sha256"] == expected
        assert delivery.headers["x-shopify-shop-domain"] == "demo-shop.myshopify.com"
    assert len({d.headers["x-shopify-webhook-id"] for d in deliveries}) == 3
