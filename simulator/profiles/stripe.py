"""The `stripe` profile: an account's customers, as Stripe's API and webhooks show them.

Served (with `Authorization: Bearer <secret key>`, or the key as HTTP Basic user):

    GET /v1/events?type=customer.*&created[gte]=<unix>&limit=N&starting_after=<evt id>
    GET /v1/customers?limit=N&starting_after=<cus id>
    GET /v1/customers/{id}

Lists are Stripe's: `{"object": "list", "data": [...], "has_more": bool,
"url": ...}`, NEWEST FIRST, paged by `starting_after` (older) or
`ending_before` (newer) with an object id, `limit` 1..100 (default 10).
A client polling the Events API from a watermark must therefore page to
the end and apply what it got oldest first. `type` matches exactly or with
a trailing `*`; `created` takes an exact value or `[gt]`, `[gte]`, `[lt]`,
`[lte]`. Errors are `{"error": {"type", "message", "code", "param"}}`.
Stripe sends no ETag and no rate-limit headers; the faults' 429s say
`rate_limit_error`.

The dataset's record "rec-000042" is one customer (`cus_` + 14
characters fixed by the seed and key); its order fields become the
customer's name, email, description, balance and metadata, its stamps the
customer's `created` and each event's `created`. Visible changes are
`customer.created` / `customer.updated` (with `previous_attributes`) /
`customer.deleted` events; silent ones change the customers listing only.

Pushed: one request per event, the event object as body, signed
`Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
(signed when sent, so a duplicate carries a fresh `t`, as Stripe's retries
do). No heartbeats, no pings.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import msgspec

from simulator.dataset import ChangeMeta, Event, Record
from simulator.faults import Breaker
from simulator.profiles.base import ApiError, Item, Profile, Request, Response, key_index

if TYPE_CHECKING:
    from simulator.state import Simulator

API_VERSION = "2024-06-20"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_NAMES = ("Jenny Rosen", "Jon Snow", "Ada Lovelace", "Grace Hopper", "Alan Turing", "Zoë Müller", "山田 太郎")


def _base62(digest: bytes, length: int) -> str:
    number = int.from_bytes(digest, "big")
    chars = []
    for _ in range(length):
        number, rest = divmod(number, 62)
        chars.append(_ALPHABET[rest])
    return "".join(chars)


def sign_stripe(secret: str, body: bytes, timestamp: int) -> str:
    """`Stripe-Signature`: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`."""
    signed = f"{timestamp}.".encode() + body
    return f"t={timestamp},v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


class StripeProfile(Profile):
    name = "stripe"

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        self._ids: dict[str, str] = {}  # dataset key -> customer id
        self._keys: dict[str, str] = {}  # customer id -> dataset key
        self._created: dict[str, int] = {}  # customer id -> created, for cursors naming one deleted since
        self._events: dict[str, dict[str, Any]] = {}  # dataset event id -> rendered event (never changes)

    def upstream_key(self, key: str) -> str:
        return self.customer_id(key)

    def reset(self) -> None:
        self._events.clear()  # a dataset reset restarts its event ids

    def customer_id(self, key: str) -> str:
        found = self._ids.get(key)
        if found is None:
            found = "cus_" + _base62(hashlib.sha256(f"{self.sim.seed}:{key}".encode()).digest(), 14)
            self._ids[key] = found
            self._keys[found] = key
        return found

    def event_id(self, event: Event) -> str:
        # Opaque to clients; unique per run, generation and seq (the dataset's id says all three).
        digest = hashlib.sha256(f"{self.sim.run_id}/{event['id']}".encode()).digest()
        return "evt_1" + _base62(digest, 23)

    # -- HTTP ------------------------------------------------------------------

    def route(self, method: str, path: str) -> str | None:
        endpoint = None
        if path == "/v1/events":
            endpoint = "events"
        elif path == "/v1/customers":
            endpoint = "customers"
        elif path.startswith("/v1/customers/") and path.count("/") == 3:
            endpoint = "customer"
        if endpoint is not None and method != "GET":
            raise ApiError(405, f"Unrecognized request URL ({method}: {path}).")
        return endpoint

    def authorized(self, request: Request) -> bool:
        token = self.sim.token
        if token is None:
            return True
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                value = base64.b64decode(value).decode().split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                return False
        elif scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(value.encode(), token.encode())

    def error(self, status: int, detail: str, field: str | None = None) -> Response:
        kind = {401: "invalid_request_error", 429: "rate_limit_error"}.get(status)
        kind = kind or ("api_error" if status >= 500 else "invalid_request_error")
        error: dict[str, Any] = {"type": kind, "message": detail}
        if status == 401:
            error["message"] = "Invalid API Key provided: sk_test_****"
        if status == 429:
            error["code"] = "rate_limit"
        if status == 404:
            error["code"] = "resource_missing"
        if field is not None:
            error["param"] = field
        return Response(status, msgspec.json.encode({"error": error}))

    def serve(self, endpoint: str, request: Request) -> Response:
        if endpoint == "events":
            body = self._list_events(request)
        elif endpoint == "customers":
            body = self._customers(request)
        else:
            body = self._customer(request)
        return Response(200, msgspec.json.encode(body), [("stripe-version", API_VERSION)])

    def _customer(self, request: Request) -> dict[str, Any]:
        wanted = unquote(request.path.rsplit("/", 1)[1])
        key = self._keys.get(wanted)
        record = None if key is None else self.sim.dataset.get(key)
        if record is None:
            raise ApiError(404, f"No such customer: '{wanted}'", "id")
        return self.customer(record)

    def _customers(self, request: Request) -> dict[str, Any]:
        created = _created_filter(request)
        rows = [
            (record.created_s, self.customer_id(record.key), record)
            for record in self.sim.dataset.records()
            if created(record.created_s)
        ]
        rows.sort(key=lambda row: (row[0], row[1]), reverse=True)  # newest first
        page, more = _page(request, [(row[0], row[1]) for row in rows], self._customer_position)
        chosen = [self.customer(rows[i][2]) for i in page]
        return {"object": "list", "data": chosen, "has_more": more, "url": "/v1/customers"}

    def _customer_position(self, object_id: str) -> tuple[int, str] | None:
        key = self._keys.get(object_id)
        if key is None:
            return None
        record = self.sim.dataset.get(key)
        # A customer deleted since the client's last page still marks a place:
        # lenient where Stripe would answer resource_missing (see docs/simulator.md).
        created = record.created_s if record is not None else self._created.get(object_id)
        return None if created is None else (created, object_id)

    def _list_events(self, request: Request) -> dict[str, Any]:
        single = request.param("type")
        types = request.params("types[]") or ([single] if single else [])
        created = _created_filter(request)
        rows: list[tuple[int, int, Event]] = []
        for entry, meta in self.sim.dataset.log_entries():
            event = self._events.get(entry["id"])
            if event is None:
                event = self._events[entry["id"]] = self.event(entry, meta)
            if types and not any(_type_matches(t, event["type"]) for t in types):
                continue
            if not created(event["created"]):
                continue
            rows.append((event["created"], entry["seq"], event))
        rows.sort(key=lambda row: (row[0], row[1]), reverse=True)  # newest first, as Stripe lists
        positions = {row[2]["id"]: (row[0], row[1]) for row in rows}
        page, more = _page(request, [(row[0], row[1]) for row in rows], lambda oid: positions.get(oid))
        chosen = self.sim.faults.maybe_break([rows[i][2] for i in page], EVENT_BREAKS)
        return {"object": "list", "data": chosen, "has_more": more, "url": "/v1/events"}

    # -- rendering -------------------------------------------------------------

    def customer(self, record: Record) -> dict[str, Any]:
        return self.render_customer(record.key, record.data, record.created_s)

    def render_customer(self, key: str, data: Mapping[str, Any], created_s: int) -> dict[str, Any]:
        index = key_index(key)
        cid = self.customer_id(key)
        self._created[cid] = created_s
        name = _NAMES[index % len(_NAMES)]
        status = str(data.get("status", "new"))
        qty = int(data.get("qty", 1))
        price = int(data.get("price_cents", 0))
        note = str(data.get("note", ""))
        slug = name.split()[0].lower().encode("ascii", "ignore").decode() or "customer"
        return {
            "id": cid,
            "object": "customer",
            "address": None,
            "balance": -price if status == "cancelled" else 0,
            "created": created_s,
            "currency": "usd" if status in ("paid", "shipped") else None,
            "default_source": None,
            "delinquent": status == "cancelled",
            "description": note or None,
            "discount": None,
            "email": f"{slug}.{index}@example.com",
            "invoice_prefix": _base62(hashlib.sha256(cid.encode()).digest(), 8).upper(),
            "invoice_settings": {
                "custom_fields": None,
                "default_payment_method": None,
                "footer": None,
                "rendering_options": None,
            },
            "livemode": False,
            "metadata": {"status": status, "seats": str(qty), "mrr_cents": str(price)},
            "name": name,
            "next_invoice_sequence": qty,
            "phone": None,
            "preferred_locales": [],
            "shipping": None,
            "tax_exempt": "none",
            "test_clock": None,
        }

    def event(self, entry: Event, meta: ChangeMeta) -> dict[str, Any]:
        """The Stripe event for one change-log entry; `created` is the change's stamp."""
        prior = meta.prior
        data: dict[str, Any]
        if entry["type"] == "delete":
            kind = "customer.deleted"
            data = {"object": self.render_customer(entry["key"], prior.data if prior else {}, meta.created_s)}
        else:
            now = self.render_customer(entry["key"], entry["data"], meta.created_s)
            data = {"object": now}
            if prior is None:
                kind = "customer.created"
            else:
                kind = "customer.updated"
                before = self.render_customer(prior.key, prior.data, prior.created_s)
                data["previous_attributes"] = {k: before[k] for k in now if before[k] != now[k]}
        return {
            "id": self.event_id(entry),
            "object": "event",
            "api_version": API_VERSION,
            "created": meta.updated_s,
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": kind,
        }

    def wire(self, secret: str | None, *, heartbeat_s: float) -> StripeWire:
        return StripeWire(self, secret)


class StripeWire:
    """One event per request, signed when sent."""

    batched = False

    def __init__(self, profile: StripeProfile, secret: str | None, clock: Callable[[], float] = time.time) -> None:
        self.profile = profile
        self.secret = secret
        self.breaks: Sequence[Breaker] = EVENT_BREAKS
        self._clock = clock

    def render(self, event: Event, meta: ChangeMeta) -> Item:
        return self.profile.event(event, meta)

    def keepalive(self, now: float) -> Item | None:
        return None

    def encode(self, items: list[Item]) -> tuple[dict[str, str], bytes]:
        (item,) = items
        body = msgspec.json.encode(item)
        headers = {
            "content-type": "application/json; charset=utf-8",
            "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        if self.secret:
            headers["stripe-signature"] = sign_stripe(self.secret, body, int(self._clock()))
        return headers, body

    def is_record(self, item: Item) -> bool:
        return True


# -- schema breaks: each makes the event unreadable by a customers mapping ---------------


def _object_without_id(event: Event) -> Event:
    data = event.get("data") or {}
    obj = {k: v for k, v in (data.get("object") or {}).items() if k != "id"}
    return {**event, "data": {**data, "object": obj}}


def _created_as_text(event: Event) -> Event:
    return {**event, "created": "yesterday"}


def _no_object(event: Event) -> Event:
    return {**event, "data": {}}


EVENT_BREAKS: tuple[Breaker, ...] = (_object_without_id, _created_as_text, _no_object)


# -- helpers ---------------------------------------------------------------------


def _type_matches(pattern: str, kind: str) -> bool:
    return kind.startswith(pattern[:-1]) if pattern.endswith("*") else kind == pattern


def _created_filter(request: Request) -> Callable[[int], bool]:
    checks: list[Callable[[int], bool]] = []
    for suffix, test in (
        ("", lambda v, b: v == b),
        ("[gt]", lambda v, b: v > b),
        ("[gte]", lambda v, b: v >= b),
        ("[lt]", lambda v, b: v < b),
        ("[lte]", lambda v, b: v <= b),
    ):
        raw = request.param(f"created{suffix}")
        if raw is None or raw == "":
            continue
        try:
            bound = int(raw)
        except ValueError as exc:
            raise ApiError(400, f"Invalid integer: {raw}", f"created{suffix}") from exc
        checks.append(lambda v, b=bound, t=test: t(v, b))  # type: ignore[misc]
    return lambda value: all(check(value) for check in checks)


def _page(
    request: Request,
    order: list[tuple[int, Any]],
    position: Callable[[str], tuple[int, Any] | None],
) -> tuple[list[int], bool]:
    """Indexes into `order` (sorted newest first) for this page, and has_more."""
    raw_limit = request.param("limit") or "10"
    try:
        limit = int(raw_limit)
    except ValueError as exc:
        raise ApiError(400, f"Invalid integer: {raw_limit}", "limit") from exc
    if not 1 <= limit <= 100:
        raise ApiError(400, "This value must be greater than or equal to 1 and less than or equal to 100.", "limit")
    after, before = request.param("starting_after"), request.param("ending_before")
    if after and before:
        message = "You may only specify one of these parameters: ending_before, starting_after."
        raise ApiError(400, message, "ending_before")
    if after:
        mark = position(after)
        if mark is None:
            raise ApiError(400, f"No such object: '{after}'", "starting_after")
        start = next((i for i, row in enumerate(order) if row < mark), len(order))  # older than the mark
        return list(range(start, min(start + limit, len(order)))), start + limit < len(order)
    if before:
        mark = position(before)
        if mark is None:
            raise ApiError(400, f"No such object: '{before}'", "ending_before")
        end = next((i for i, row in enumerate(order) if row <= mark), len(order))  # newer than the mark
        start = max(end - limit, 0)
        return list(range(start, end)), start > 0
    return list(range(min(limit, len(order)))), limit < len(order)
