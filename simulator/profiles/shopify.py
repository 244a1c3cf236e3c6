"""The `shopify` profile: a store's orders, as Shopify's Admin REST API and webhooks show them.

Served (with `X-Shopify-Access-Token: <token>`):

    GET /admin/api/{version}/orders.json?status=any&limit=N&updated_at_min=<ISO 8601>&order=updated_at asc
    GET /admin/api/{version}/orders/{id}.json

The list is `{"orders": [...]}`: `status` (open, closed, cancelled, any;
default open), `updated_at_min` / `updated_at_max` / `created_at_min`,
`order` (`updated_at` or `created_at`, `asc` or `desc`; default
`created_at desc`), `limit` (default 50, at most 250). Pages are cursors,
as on Shopify: `Link: <...?limit=N&page_info=...>; rel="next"`, where
`page_info` carries the filters and the last (time, id) seen, so an order
updated while a client pages is seen again later, never skipped; with
`page_info` no other filter may be given (400). Every answer carries
`X-Shopify-Shop-Api-Call-Limit: <used>/<limit>` of a budget per window
(`rate_limit`, `rate_window_s`, default 40 per 20 s); over it, 429 with
`Retry-After`. Times are in the shop's zone (-05:00).

The dataset's record "rec-000042" is order #1043 with id
`ID_BASE + 42`; its fields become the order's financial and fulfillment
status, total, quantity and note.

Pushed: one request per change, topic `orders/create`, `orders/updated`
or `orders/delete` (whose body is only `{"id"}`, as Shopify's is), headers
`X-Shopify-Topic`, `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256(secret,
body)>`, `X-Shopify-Webhook-Id` (repeated by a duplicate),
`X-Shopify-Triggered-At`, `X-Shopify-Shop-Domain`, `X-Shopify-API-Version`.
No seq, no heartbeats.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import msgspec

from simulator.dataset import ChangeMeta, Event, Record
from simulator.faults import Breaker
from simulator.profiles.base import ApiError, Item, Profile, Request, Response, key_index
from simulator.ratelimit import RateWindow

if TYPE_CHECKING:
    from simulator.state import Simulator

API_VERSION = "2024-01"
ID_BASE = 5_100_000_000
SHOP_ZONE = timezone(timedelta(hours=-5))
MAX_LIMIT = 250
_ORDERS = re.compile(r"^/admin/api/[0-9]{4}-[0-9]{2}/orders\.json$")
_ORDER = re.compile(r"^/admin/api/[0-9]{4}-[0-9]{2}/orders/([0-9]+)\.json$")
_FILTERS = ("status", "updated_at_min", "updated_at_max", "created_at_min", "order")
# The dataset's order status as Shopify's: financial status, fulfillment status, closed, cancelled.
_STATUS = {
    "new": ("pending", None, False, False),
    "paid": ("paid", None, False, False),
    "shipped": ("paid", "fulfilled", True, False),
    "cancelled": ("voided", None, True, True),
}


def shop_time(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).astimezone(SHOP_ZONE).isoformat()


class ShopifyProfile(Profile):
    name = "shopify"

    def __init__(
        self, sim: Simulator, *, shop: str = "demo-shop", rate_limit: int | None = 40, rate_window_s: float = 20.0
    ) -> None:
        super().__init__(sim)
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", shop):
            raise ValueError("shop is a lowercase store name, e.g. demo-shop")
        self.shop = shop
        self.window = RateWindow(limit=rate_limit, window_s=rate_window_s)

    def settings(self) -> dict[str, Any]:
        state = self.window.state()
        return {
            "name": self.name,
            "shop": self.shop,
            "rate_limit": self.window.limit,
            "rate_window_s": self.window.window_s,
            "rate_remaining": state.remaining,
            "rate_refused": self.window.refused,
        }

    def configure(self, patch: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(patch) - {"rate_limit", "rate_window_s"}
        if unknown:
            raise ValueError(f"unknown shopify setting(s): {sorted(unknown)}")
        if patch:
            limit = patch.get("rate_limit", self.window.limit)
            window_s = patch.get("rate_window_s", self.window.window_s)
            if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
                raise ValueError("rate_limit must be an integer or null")
            if not isinstance(window_s, int | float) or isinstance(window_s, bool):
                raise ValueError("rate_window_s must be a number")
            self.window.configure(limit=limit, window_s=float(window_s))
            self.window.reset()
        return self.settings()

    def reset(self) -> None:
        self.window.reset()

    def upstream_key(self, key: str) -> str:
        return str(ID_BASE + key_index(key))

    # -- HTTP ------------------------------------------------------------------

    def route(self, method: str, path: str) -> str | None:
        endpoint = "orders" if _ORDERS.match(path) else "order" if _ORDER.match(path) else None
        if endpoint is not None and method != "GET":
            raise ApiError(406, "Not Acceptable")
        return endpoint

    def authorized(self, request: Request) -> bool:
        token = self.sim.token
        if token is None:
            return True
        got = request.headers.get("x-shopify-access-token", "")
        return hmac.compare_digest(got.encode(), token.encode())

    def error(self, status: int, detail: str, field: str | None = None) -> Response:
        if status == 401:
            detail = "[API] Invalid API key or access token (unrecognized login or wrong password)"
        errors: object = {field: [detail]} if field else detail
        return Response(status, msgspec.json.encode({"errors": errors}), content_type="application/json; charset=utf-8")

    def serve(self, endpoint: str, request: Request) -> Response:
        if not self.window.take():
            state = self.window.state()
            response = self.error(429, "Exceeded 2 calls per second for api client. Reduce request rates to resume.")
            wait = max(1, state.reset - int(datetime.now(UTC).timestamp()))
            response.headers.append(("retry-after", str(wait)))
            response.outcome = "over_limit"
            return response
        if endpoint == "order":
            response = Response(200, msgspec.json.encode({"order": self._one(request)}))
        else:
            body, link = self._list(request)
            response = Response(200, body)
            if link:
                response.headers.append(("link", link))
        state = self.window.state()
        limit = 40 if state.limit is None else state.limit
        response.headers.append(("x-shopify-shop-api-call-limit", f"{state.used}/{limit}"))
        response.headers.append(("x-shopify-api-version", API_VERSION))
        return response

    def _one(self, request: Request) -> dict[str, Any]:
        match = _ORDER.match(request.path)
        wanted = int(match.group(1)) if match else 0
        for record in self.sim.dataset.records():
            if ID_BASE + key_index(record.key) == wanted:
                return self.order(record)
        raise ApiError(404, "Not Found")

    def _list(self, request: Request) -> tuple[bytes, str]:
        limit = _limit(request)
        page_info = request.param("page_info")
        after: tuple[str, int] | None = None
        if page_info:
            if any(request.param(name) for name in _FILTERS):
                raise ApiError(400, "page_info cannot be combined with other filters", "page_info")
            filters, after = _decode_cursor(page_info)
        else:
            filters = {name: value for name in _FILTERS if (value := request.param(name))}
        status = filters.get("status", "open")
        if status not in ("open", "closed", "cancelled", "any"):
            raise ApiError(400, "status is not one of open, closed, cancelled, any", "status")
        field, _, direction = filters.get("order", "created_at desc").partition(" ")
        if field not in ("created_at", "updated_at") or direction not in ("asc", "desc", ""):
            raise ApiError(400, "order must be created_at or updated_at, asc or desc", "order")
        bounds = {
            name: _time(filters.get(name), name) for name in ("updated_at_min", "updated_at_max", "created_at_min")
        }
        rows: list[tuple[tuple[int, int], dict[str, Any]]] = []
        for record in self.sim.dataset.records():
            if bounds["updated_at_min"] is not None and record.updated_s < bounds["updated_at_min"]:
                continue
            if bounds["updated_at_max"] is not None and record.updated_s > bounds["updated_at_max"]:
                continue
            if bounds["created_at_min"] is not None and record.created_s < bounds["created_at_min"]:
                continue
            order = self.order(record)
            if not _status_matches(status, order):
                continue
            stamp = record.updated_s if field == "updated_at" else record.created_s
            rows.append(((stamp, order["id"]), order))
        descending = direction == "desc"
        rows.sort(key=lambda row: row[0], reverse=descending)
        if after is not None:
            mark = (int(after[0]), after[1])
            rows = [row for row in rows if (row[0] < mark if descending else row[0] > mark)]
        chosen = rows[:limit]
        orders = self.sim.faults.maybe_break([order for _, order in chosen], ORDER_BREAKS)
        link = ""
        if len(rows) > limit:
            cursor = _encode_cursor(filters, (str(chosen[-1][0][0]), chosen[-1][0][1]))
            query = urlencode({"limit": str(limit), "page_info": cursor})
            link = f'<{request.base_url}{request.path}?{query}>; rel="next"'
        return msgspec.json.encode({"orders": orders}), link

    # -- rendering -------------------------------------------------------------

    def order(self, record: Record) -> dict[str, Any]:
        return self.render(record.key, record.data, record.created_s, record.updated_s)

    def render(self, key: str, data: Mapping[str, Any], created_s: int, updated_s: int) -> dict[str, Any]:
        index = key_index(key)
        order_id = ID_BASE + index
        status = str(data.get("status", "new"))
        financial, fulfillment, closed, cancelled = _STATUS.get(status, _STATUS["new"])
        qty = int(data.get("qty", 1))
        cents = int(data.get("price_cents", 0))
        unit = f"{cents / 100:.2f}"
        total = f"{cents * qty / 100:.2f}"
        return {
            "id": order_id,
            "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
            "name": f"#{1001 + index}",
            "order_number": 1001 + index,
            "email": f"buyer{index}@example.com",
            "created_at": shop_time(created_s),
            "updated_at": shop_time(updated_s),
            "processed_at": shop_time(created_s),
            "closed_at": shop_time(updated_s) if closed else None,
            "cancelled_at": shop_time(updated_s) if cancelled else None,
            "cancel_reason": "customer" if cancelled else None,
            "financial_status": financial,
            "fulfillment_status": fulfillment,
            "confirmed": True,
            "test": False,
            "currency": "USD",
            "presentment_currency": "USD",
            "subtotal_price": total,
            "total_price": total,
            "total_tax": "0.00",
            "total_discounts": "0.00",
            "note": str(data.get("note", "")) or None,
            "tags": status,
            "line_items": [
                {
                    "id": 9_000_000_000 + index,
                    "title": "Simulated widget",
                    "sku": f"SIM-{index % 20:03d}",
                    "quantity": qty,
                    "price": unit,
                    "requires_shipping": True,
                }
            ],
        }

    def wire(self, secret: str | None, *, heartbeat_s: float) -> ShopifyWire:
        return ShopifyWire(self, secret)


class ShopifyWire:
    """One webhook per change; `orders/delete` carries only the id."""

    batched = False

    def __init__(self, profile: ShopifyProfile, secret: str | None) -> None:
        self.profile = profile
        self.secret = secret
        self.breaks: Sequence[Breaker] = ORDER_WEBHOOK_BREAKS

    def render(self, event: Event, meta: ChangeMeta) -> Item:
        profile = self.profile
        if event["type"] == "delete":
            topic, body = "orders/delete", {"id": int(profile.upstream_key(event["key"]))}
        else:
            topic = "orders/create" if meta.prior is None else "orders/updated"
            body = profile.render(event["key"], event["data"], meta.created_s, meta.updated_s)
        webhook_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{profile.sim.run_id}/{event['id']}"))
        return {"topic": topic, "id": webhook_id, "at": shop_time(meta.updated_s), "body": body}

    def keepalive(self, now: float) -> Item | None:
        return None

    def encode(self, items: list[Item]) -> tuple[dict[str, str], bytes]:
        (item,) = items
        body = msgspec.json.encode(item["body"])
        headers = {
            "content-type": "application/json",
            "x-shopify-topic": item["topic"],
            "x-shopify-webhook-id": item["id"],
            "x-shopify-event-id": item["id"],
            "x-shopify-triggered-at": item["at"],
            "x-shopify-shop-domain": f"{self.profile.shop}.myshopify.com",
            "x-shopify-api-version": API_VERSION,
        }
        if self.secret:
            digest = hmac.new(self.secret.encode(), body, hashlib.sha256).digest()
            headers["x-shopify-hmac-sha256"] = base64.b64encode(digest).decode()
        return headers, body

    def is_record(self, item: Item) -> bool:
        return True


# -- schema breaks ---------------------------------------------------------------


def _without_id(order: Event) -> Event:
    return {k: v for k, v in order.items() if k != "id"}


def _bad_time(order: Event) -> Event:
    return {**order, "updated_at": "last tuesday"}


ORDER_BREAKS: tuple[Breaker, ...] = (_without_id, _bad_time)
ORDER_WEBHOOK_BREAKS: tuple[Breaker, ...] = tuple(
    (lambda breaker: lambda item: {**item, "body": breaker(item["body"])})(b) for b in ORDER_BREAKS
)


# -- helpers ---------------------------------------------------------------------


def _status_matches(status: str, order: Mapping[str, Any]) -> bool:
    if status == "any":
        return True
    if status == "cancelled":
        return order["cancelled_at"] is not None
    if status == "closed":
        return order["closed_at"] is not None
    return order["closed_at"] is None and order["cancelled_at"] is None


def _limit(request: Request) -> int:
    raw = request.param("limit") or "50"
    try:
        value = int(raw)
    except ValueError as exc:
        raise ApiError(400, "limit must be an integer", "limit") from exc
    if not 1 <= value <= MAX_LIMIT:
        raise ApiError(400, f"limit must be within 1..{MAX_LIMIT}", "limit")
    return value


def _time(raw: str | None, name: str) -> float | None:
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ApiError(400, f"{name} is not an ISO 8601 time", name) from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=SHOP_ZONE)).timestamp()


def _encode_cursor(filters: Mapping[str, str], after: tuple[str, int]) -> str:
    raw = msgspec.json.encode({"f": dict(filters), "a": list(after)})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(token: str) -> tuple[dict[str, str], tuple[str, int]]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        decoded = msgspec.json.decode(raw)
        return dict(decoded["f"]), (str(decoded["a"][0]), int(decoded["a"][1]))
    except (binascii.Error, msgspec.DecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise ApiError(400, "page_info is not valid", "page_info") from exc
