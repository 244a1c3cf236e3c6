"""The default profile: BeastFlow's own protocol (docs/contract.md §6 feed and snapshot, §4 pushes).

    GET /changes?after=<seq>&limit=<n>          -> {"events": [...], "has_more": bool}
    GET /snapshot?page_token=<t>&limit=<n>      -> {"records": [...], "next_page_token"}
    GET /snapshot?digest=1                      -> {"buckets": {"00": hex, ..., "ff": hex}}
    GET /snapshot?bucket=ab&page_token=&limit=  -> one bucket, paged like a snapshot
    GET /snapshot?digest=1&bucket=ab            -> {"buckets": {"ab00": hex, ..., "abff": hex}}
    GET /snapshot?bucket=abcd&page_token=&limit= -> one sub-bucket, paged like a snapshot

(The last two extend docs/contract.md §6 one level down: a sub-bucket is the first
four hex digits of sha256(key), its digest has the bucket's line format.)

Pushes: `{"events": [...]}` signed `X-BeastFlow-Signature: sha256=<hex HMAC>`,
and a heartbeat carrying the newest seq every `heartbeat_s`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from simulator.dataset import MAX_PAGE, ChangeMeta, Event
from simulator.faults import CONTRACT_BREAKS, Breaker
from simulator.profiles.base import ApiError, Item, Profile, Request, Response

if TYPE_CHECKING:
    from simulator.state import Simulator

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    404: "Not found",
    405: "Method not allowed",
    413: "Payload too large",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}


def problem(status: int, detail: str, field: str | None = None) -> bytes:
    errors = [{"field": field, "message": detail}] if field else []
    return msgspec.json.encode(
        {
            "type": "about:blank",
            "title": _TITLES.get(status, "Error"),
            "status": status,
            "detail": detail,
            "errors": errors,
        }
    )


def sign(secret: str, body: bytes) -> str:
    """docs/contract.md §4: `sha256=<hex HMAC-SHA256(webhook_secret, raw body)>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def int_param(request: Request, name: str, default: int, *, minimum: int) -> int:
    raw = request.param(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ApiError(400, f"{name} must be an integer", name) from exc
    if value < minimum:
        raise ApiError(400, f"{name} must be >= {minimum}", name)
    return value


class BeastflowProfile(Profile):
    name = "beastflow"

    def route(self, method: str, path: str) -> str | None:
        if path not in ("/changes", "/snapshot"):
            return None
        if method != "GET":
            raise ApiError(405, "use GET")
        return path[1:]

    def authorized(self, request: Request) -> bool:
        token = self.sim.token
        if token is None:
            return True
        got = request.headers.get("authorization")
        return got is not None and hmac.compare_digest(got.encode(), f"Bearer {token}".encode())

    def error(self, status: int, detail: str, field: str | None = None) -> Response:
        response = Response(status, problem(status, detail, field), content_type="application/problem+json")
        if status == 401:
            response.headers.append(("www-authenticate", 'Bearer realm="simulator"'))
        return response

    def serve(self, endpoint: str, request: Request) -> Response:
        body = self._changes(request) if endpoint == "changes" else self._snapshot(request)
        return Response(200, body)

    def _changes(self, request: Request) -> bytes:
        after = int_param(request, "after", 0, minimum=0)
        # Larger pages are capped, not refused, as real upstreams do; has_more
        # tells the client to continue.
        limit = min(int_param(request, "limit", 100, minimum=1), MAX_PAGE)
        events, has_more = self.sim.dataset.changes(after=after, limit=limit)
        events = self.sim.faults.maybe_break(events)
        return msgspec.json.encode({"events": events, "has_more": has_more})

    def _snapshot(self, request: Request) -> bytes:
        dataset = self.sim.dataset
        if request.param("digest") not in (None, "", "0"):
            try:
                buckets = dataset.digests(request.param("bucket") or None)
            except ValueError as exc:
                raise ApiError(400, str(exc), "bucket") from exc
            return msgspec.json.encode({"buckets": buckets})
        limit = min(int_param(request, "limit", 100, minimum=1), MAX_PAGE)
        try:
            records, token = dataset.snapshot_page(
                page_token=request.param("page_token") or None,
                limit=limit,
                bucket=request.param("bucket") or None,
            )
        except ValueError as exc:
            field = "bucket" if "bucket" in str(exc) else "page_token"
            raise ApiError(400, str(exc), field) from exc
        return msgspec.json.encode({"records": records, "next_page_token": token})

    def wire(self, secret: str | None, *, heartbeat_s: float) -> BeastflowWire:
        return BeastflowWire(self.sim, secret, heartbeat_s)


class BeastflowWire:
    """docs/contract.md §4 batches and heartbeats."""

    batched = True
    breaks: Sequence[Breaker] = CONTRACT_BREAKS

    def __init__(self, sim: Simulator, secret: str | None, heartbeat_s: float) -> None:
        self.sim = sim
        self.secret = secret
        self.heartbeat_s = heartbeat_s
        self._count = 0
        self._last = float("-inf")

    def render(self, event: Event, meta: ChangeMeta) -> Item:
        return event

    def keepalive(self, now: float) -> Item | None:
        if now - self._last < self.heartbeat_s:
            return None
        self._last = now
        self._count += 1
        return {
            # The run id keeps ids unique across simulator restarts: the
            # receiver dedups by id and would drop a repeated "hb_1".
            "id": f"hb_{self.sim.run_id}_{self._count}",
            "type": "heartbeat",
            "seq": self.sim.dataset.head_seq,
        }

    def encode(self, items: list[Item]) -> tuple[dict[str, str], bytes]:
        body = msgspec.json.encode({"events": items})
        headers = {"content-type": "application/json"}
        if self.secret:
            headers["x-beastflow-signature"] = sign(self.secret, body)
        return headers, body

    def is_record(self, item: dict[str, Any]) -> bool:
        return item.get("type") != "heartbeat"
