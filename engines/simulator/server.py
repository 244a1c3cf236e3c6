"""The simulator's HTTP surface: a raw ASGI app, no framework.

Upstream endpoints (CONTRACT §6), where the faults apply:

    GET /changes?after=<seq>&limit=<n>          -> {"events": [...], "has_more": bool}
    GET /snapshot?page_token=<t>&limit=<n>      -> {"records": [...], "next_page_token"}
    GET /snapshot?digest=1                      -> {"buckets": {"00": hex, ..., "ff": hex}}
    GET /snapshot?bucket=ab&page_token=&limit=  -> one bucket, paged like a snapshot
    GET /snapshot?digest=1&bucket=ab            -> {"buckets": {"ab00": hex, ..., "abff": hex}}
    GET /snapshot?bucket=abcd&page_token=&limit= -> one sub-bucket, paged like a snapshot

(The last two extend CONTRACT §6 one level down: a sub-bucket is the first
four hex digits of sha256(key), its digest has the bucket's line format.)

Control API (never faulted, never authenticated: it binds to loopback only):

    GET  /_control/state
    POST /_control/faults    {<Faults field>: value, ...}   patch, returns the faults
    POST /_control/mutate    {"count": 1, "silent": false, "delete": false}
    POST /_control/traffic   {"mutations_per_s", "silent_rate", "delete_rate"} (any subset)
    POST /_control/scenario  <scenario document> | {"stop": true}
    POST /_control/reset     {"dataset": false}
    GET  /healthz
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import msgspec

from engines.simulator.dataset import MAX_PAGE
from engines.simulator.faults import FaultError, RequestPlan
from engines.simulator.scenario import ScenarioError, parse_scenario
from engines.simulator.state import Simulator

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY = 1 << 20  # control payloads are small; a scenario is a few KB
_JSON = b"application/json"
_PROBLEM = b"application/problem+json"


class HttpError(Exception):
    def __init__(self, status: int, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field


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


class SimulatorApp:
    """ASGI 3 app over one Simulator. `stopping` cuts long sleeps short at shutdown."""

    def __init__(self, sim: Simulator, *, stopping: asyncio.Event | None = None) -> None:
        self.sim = sim
        self.stopping = stopping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        try:
            if path in ("/changes", "/snapshot"):
                _require(method, "GET")
                await self._upstream(path[1:], scope, receive, send)
            elif path.startswith("/_control/"):
                await self._control(path.removeprefix("/_control/"), method, receive, send)
            elif path == "/healthz":
                await respond(send, 200, b'{"status":"ok"}')
            else:
                raise HttpError(404, f"no route for {path}")
        except HttpError as exc:
            await respond(send, exc.status, problem(exc.status, exc.detail, exc.field), _PROBLEM)

    # -- upstream endpoints ----------------------------------------------------

    async def _upstream(self, endpoint: str, scope: Scope, receive: Receive, send: Send) -> None:
        plan = self.sim.faults.decide_request(authorized=self._authorized(scope))
        self.sim.count(f"{endpoint}.{plan.outcome}")
        if plan.delay_s > 0:
            await self._sleep(plan.delay_s)
        if plan.outcome == "reset":
            await _abort(receive, send)
            return
        if plan.outcome != "ok" and plan.outcome != "bad_json":
            await self._fail(plan, send)
            return
        query = _query(scope)
        body = self._changes(query) if endpoint == "changes" else self._snapshot(query)
        if plan.outcome == "bad_json":
            body = body[: max(1, len(body) // 2)]  # a body cut short mid-transfer
        await respond(send, 200, body)

    async def _fail(self, plan: RequestPlan, send: Send) -> None:
        headers: list[tuple[bytes, bytes]] = []
        detail = {
            "outage": "upstream unavailable (simulated outage)",
            "unauthorized": "missing or invalid bearer token",
            "timeout": "upstream timed out (simulated)",
            "rate_limited": "rate limited (simulated)",
            "server_error": "upstream error (simulated)",
        }[plan.outcome]
        if plan.outcome == "unauthorized":
            headers.append((b"www-authenticate", b'Bearer realm="simulator"'))
        if plan.retry_after_s is not None:
            headers.append((b"retry-after", str(plan.retry_after_s).encode()))
        await respond(send, plan.status, problem(plan.status, detail), _PROBLEM, headers)

    def _authorized(self, scope: Scope) -> bool:
        token = self.sim.token
        if token is None:
            return True
        got = _header(scope, b"authorization")
        return got is not None and hmac.compare_digest(got, f"Bearer {token}".encode())

    def _changes(self, query: dict[str, str]) -> bytes:
        after = _int(query, "after", 0, minimum=0)
        # Larger pages are capped, not refused, as real upstreams do; has_more
        # tells the client to continue.
        limit = min(_int(query, "limit", 100, minimum=1), MAX_PAGE)
        events, has_more = self.sim.dataset.changes(after=after, limit=limit)
        events = self.sim.faults.maybe_break(events)
        return msgspec.json.encode({"events": events, "has_more": has_more})

    def _snapshot(self, query: dict[str, str]) -> bytes:
        if query.get("digest") not in (None, "", "0"):
            try:
                buckets = self.sim.dataset.digests(query.get("bucket") or None)
            except ValueError as exc:
                raise HttpError(400, str(exc), "bucket") from exc
            return msgspec.json.encode({"buckets": buckets})
        limit = min(_int(query, "limit", 100, minimum=1), MAX_PAGE)
        try:
            records, token = self.sim.dataset.snapshot_page(
                page_token=query.get("page_token") or None,
                limit=limit,
                bucket=query.get("bucket") or None,
            )
        except ValueError as exc:
            field = "bucket" if "bucket" in str(exc) else "page_token"
            raise HttpError(400, str(exc), field) from exc
        return msgspec.json.encode({"records": records, "next_page_token": token})

    async def _sleep(self, seconds: float) -> None:
        if self.stopping is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):  # slept the full time
            await asyncio.wait_for(self.stopping.wait(), seconds)

    # -- control API -----------------------------------------------------------

    async def _control(self, route: str, method: str, receive: Receive, send: Send) -> None:
        sim = self.sim
        if route == "state":
            _require(method, "GET")
            await respond(send, 200, msgspec.json.encode(sim.describe()))
            return
        _require(method, "POST")
        payload = await _read_json(receive)
        result: object
        if route == "faults":
            if not isinstance(payload, dict):
                raise HttpError(400, "expected an object of fault fields")
            try:
                result = {"faults": sim.faults.update(payload).as_dict()}
            except FaultError as exc:
                raise HttpError(400, str(exc)) from exc
        elif route == "mutate":
            opts = _object(payload)
            count = opts.get("count", 1)
            if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 100_000:
                raise HttpError(400, "count must be an integer within 0..100000", "count")
            changes = sim.mutate(
                count=count,
                silent=_flag(opts, "silent"),
                delete=_flag(opts, "delete"),
            )
            result = {
                "changes": [c.as_dict() for c in changes],
                "head_seq": sim.dataset.head_seq,
            }
        elif route == "traffic":
            opts = _object(payload)
            unknown = set(opts) - {"mutations_per_s", "silent_rate", "delete_rate"}
            if unknown:
                raise HttpError(400, f"unknown field(s): {sorted(unknown)}")
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in opts.values()):
                raise HttpError(400, "traffic fields are numbers")
            try:
                result = {"traffic": msgspec.to_builtins(sim.set_traffic(**opts))}
            except ValueError as exc:
                raise HttpError(400, str(exc)) from exc
        elif route == "scenario":
            if isinstance(payload, dict) and payload.get("stop") is True:
                sim.stop_scenario()
            else:
                try:
                    sim.start_scenario(parse_scenario(payload))
                except ScenarioError as exc:
                    raise HttpError(400, str(exc)) from exc
            result = {"scenario": sim.describe()["scenario"]}
        elif route == "reset":
            sim.reset(dataset=_flag(_object(payload), "dataset"))
            result = sim.describe()
        else:
            raise HttpError(404, f"no control route {route!r}")
        await respond(send, 200, msgspec.json.encode(result))


# -- ASGI helpers ------------------------------------------------------------------


async def respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = _JSON,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _abort(receive: Receive, send: Send) -> None:
    """Drop the TCP connection with no response, like a crashed upstream.

    ASGI offers no way to do this; uvicorn's request cycle (the object behind
    `receive`) holds the transport. Without it, fall back to a 503.
    """
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is None or not hasattr(transport, "abort"):
        await respond(send, 503, problem(503, "upstream unavailable (simulated outage)"), _PROBLEM)
        return
    transport.abort()
    # Wait for uvicorn to notice, or it logs "returned without starting response".
    try:
        async with asyncio.timeout(1.0):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        pass


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_json(receive: Receive) -> object:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HttpError(400, "client went away")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise HttpError(413, f"body over {MAX_BODY} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise HttpError(400, f"invalid JSON: {exc}") from exc


def _require(method: str, allowed: str) -> None:
    if method != allowed:
        raise HttpError(405, f"use {allowed}")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _query(scope: Scope) -> dict[str, str]:
    parsed = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


def _int(query: dict[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise HttpError(400, f"{name} must be an integer", name) from exc
    if value < minimum:
        raise HttpError(400, f"{name} must be >= {minimum}", name)
    return value


def _object(payload: object) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise HttpError(400, "expected a JSON object")
    return payload


def _flag(opts: dict[str, Any], name: str) -> bool:
    value = opts.get(name, False)
    if not isinstance(value, bool):
        raise HttpError(400, f"{name} must be a boolean", name)
    return value
