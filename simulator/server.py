"""The simulator's HTTP surface: a raw ASGI app, no framework.

Upstream endpoints are the profile's (simulator/profiles): the
default `beastflow` profile serves docs/contract.md §6 (`/changes`, `/snapshot`),
`github` serves `/repos/{owner}/{repo}/issues`, `stripe` `/v1/events` and
`/v1/customers`. The faults apply to every one of them, in the same order:
outage, credentials, timeout, 429, 5xx, truncated body. See docs/simulator.md.

Control API (never faulted; it binds to loopback only, and every request
needs `Authorization: Bearer <control token>`, else 401: another local
process or a page in the browser must not be able to fault or rewrite the
upstream. The runner generates the token unless given one: docs/simulator.md):

    GET  /_control/state
    POST /_control/faults    {<Faults field>: value, ...}   patch, returns the faults
    POST /_control/mutate    {"count": 1, "silent": false, "delete": false}
    POST /_control/traffic   {"mutations_per_s", "silent_rate", "delete_rate"} (any subset)
    POST /_control/scenario  <scenario document> | {"stop": true}
    POST /_control/reset     {"dataset": false}
    GET  /_control/profile                       the profile's name and settings
    POST /_control/profile   {<setting>: value}  e.g. github's rate_limit, rate_window_s
    GET  /healthz
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from simulator.faults import FaultError
from simulator.profiles.base import ApiError, Request, Response
from simulator.profiles.beastflow import problem
from simulator.scenario import ScenarioError, parse_scenario
from simulator.state import Simulator

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


class SimulatorApp:
    """ASGI 3 app over one Simulator. `stopping` cuts long sleeps short at shutdown.

    Without a `control_token` the control API answers 401 to everything
    (an app serving the upstream endpoints only).
    """

    def __init__(
        self, sim: Simulator, *, stopping: asyncio.Event | None = None, control_token: str | None = None
    ) -> None:
        self.sim = sim
        self.stopping = stopping
        self.control_token = control_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        profile = self.sim.profile
        try:
            if path.startswith("/_control/"):
                if not control_allowed(_header(scope, b"authorization"), self.control_token):
                    body = problem(401, "send the control token: Authorization: Bearer <token>")
                    await respond(send, 401, body, _PROBLEM, [(b"www-authenticate", b"Bearer")])
                    return
                await self._control(path.removeprefix("/_control/"), method, receive, send)
            elif path == "/healthz":
                await respond(send, 200, b'{"status":"ok"}')
            else:
                try:
                    endpoint = profile.route(method, path)
                    if endpoint is None:
                        raise ApiError(404, f"no route for {path}")
                    await self._upstream(endpoint, _request(scope), receive, send)
                except ApiError as exc:
                    await _send(send, profile.error(exc.status, exc.detail, exc.field))
        except HttpError as exc:
            await respond(send, exc.status, problem(exc.status, exc.detail, exc.field), _PROBLEM)

    # -- upstream endpoints ----------------------------------------------------

    async def _upstream(self, endpoint: str, request: Request, receive: Receive, send: Send) -> None:
        profile = self.sim.profile
        plan = self.sim.faults.decide_request(authorized=profile.authorized(request))
        response: Response | None = None
        outcome: str = plan.outcome
        if plan.outcome in ("ok", "bad_json"):
            # Answered as of the request's arrival; the latency only delays it.
            response = profile.serve(endpoint, request)
            truncated = plan.outcome == "bad_json" and response.status == 200
            outcome = "bad_json" if truncated else response.outcome or "ok"
        # Counted before any hold, so a test sees a held request as it arrives.
        self.sim.count(f"{endpoint}.{outcome}")
        if plan.delay_s > 0:
            await self._sleep(plan.delay_s)
        if plan.outcome == "reset":
            await _abort(receive, send)
            return
        if response is None:
            await _send(send, profile.failure(plan))
            return
        if outcome == "bad_json":
            response.body = response.body[: max(1, len(response.body) // 2)]  # a body cut short mid-transfer
        await _send(send, response)

    async def _sleep(self, seconds: float) -> None:
        if self.stopping is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):  # slept the full time
            await asyncio.wait_for(self.stopping.wait(), seconds)

    # -- control API -----------------------------------------------------------

    async def _control(self, route: str, method: str, receive: Receive, send: Send) -> None:
        sim = self.sim
        if route == "state" or (route == "profile" and method == "GET"):
            _require(method, "GET")
            shown = sim.describe() if route == "state" else {"profile": sim.profile.settings()}
            await respond(send, 200, msgspec.json.encode(shown))
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
                # upstream_key: the key a receiver stores (an issue id, a customer id).
                "changes": [c.as_dict() | {"upstream_key": sim.profile.upstream_key(c.key)} for c in changes],
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
        elif route == "profile":
            try:
                result = {"profile": sim.profile.configure(_object(payload))}
            except ValueError as exc:
                raise HttpError(400, str(exc)) from exc
        else:
            raise HttpError(404, f"no control route {route!r}")
        await respond(send, 200, msgspec.json.encode(result))


def control_allowed(authorization: str | None, token: str | None) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time; never without a token configured."""
    if not token:
        return False
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


# -- ASGI helpers ------------------------------------------------------------------


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if bytes(key).lower() == name:
            return bytes(value).decode("latin-1")
    return None


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


async def _send(send: Send, response: Response) -> None:
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.headers]
    await respond(send, response.status, response.body, response.content_type.encode(), headers)


def _request(scope: Scope) -> Request:
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        headers[bytes(name).decode("latin-1").lower()] = bytes(value).decode("latin-1")
    host = headers.get("host")
    if host is None:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return Request(
        method=scope["method"],
        path=scope["path"],
        query=parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True),
        headers=headers,
        base_url=f"{scope.get('scheme', 'http')}://{host}",
    )


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


def _object(payload: object) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise HttpError(400, "expected a JSON object")
    return payload


def _flag(opts: dict[str, Any], name: str) -> bool:
    value = opts.get(name, False)
    if not isinstance(value, bool):
        raise HttpError(400, f"{name} must be a boolean", name)
    return value
