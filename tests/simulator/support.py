"""Helpers for the simulator tests: a signed-push receiver, a docs/contract.md §4 checker, waiting.

Plain module, not a conftest: the simulator tests need no Django and must also
run with `-p no:django --noconftest`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def bucket_of(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:2]


def independent_digests(records: list[dict[str, Any]]) -> dict[str, str]:
    """docs/contract.md §6 bucket digests recomputed from snapshot items, sharing no code
    with the simulator."""
    lines: dict[str, list[tuple[str, str]]] = {f"{i:02x}": [] for i in range(256)}
    for rec in records:
        canonical = json.dumps(rec["data"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        rhash = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        lines[bucket_of(rec["key"])].append((rec["key"], f"{rec['key']}\t{rec['version']}\t{rhash}\n"))
    return {
        b: hashlib.sha256("".join(line for _, line in sorted(items)).encode("utf-8")).hexdigest()
        for b, items in lines.items()
    }


def contract_errors(event: Any) -> list[str]:
    """docs/contract.md §4 written out independently of the simulator's own code."""
    if not isinstance(event, dict):
        return ["not an object"]
    errors = []
    if not isinstance(event.get("id"), str) or not 1 <= len(event["id"]) <= 255:
        errors.append("id")
    kind = event.get("type")
    if kind not in ("upsert", "delete", "heartbeat"):
        errors.append("type")
    if kind in ("upsert", "delete"):
        if not isinstance(event.get("key"), str) or not event["key"]:
            errors.append("key")
        version = event.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            errors.append("version")
    if kind == "upsert" and not isinstance(event.get("data"), dict):
        errors.append("data")
    return errors


@dataclass
class Delivery:
    body: bytes
    signature: str | None
    events: list[dict[str, Any]]
    at: float


@dataclass
class Receiver:
    """A tiny BeastFlow stand-in: records each push and checks its signature."""

    secret: str
    status: int = 202
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def signature_ok(self, delivery: Delivery) -> bool:
        expected = "sha256=" + hmac.new(self.secret.encode(), delivery.body, hashlib.sha256).hexdigest()
        return delivery.signature is not None and hmac.compare_digest(delivery.signature, expected)

    def events(self, *, heartbeats: bool = False) -> list[dict[str, Any]]:
        with self.lock:
            return [
                e
                for d in self.deliveries
                for e in d.events
                if heartbeats or not (isinstance(e, dict) and e.get("type") == "heartbeat")
            ]

    def heartbeats(self) -> list[dict[str, Any]]:
        return [e for e in self.events(heartbeats=True) if e.get("type") == "heartbeat"]

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = dict(scope["headers"])
        raw_sig = headers.get(b"x-beastflow-signature")
        delivery = Delivery(
            body=body,
            signature=raw_sig.decode() if raw_sig else None,
            events=json.loads(body)["events"],
            at=time.monotonic(),
        )
        with self.lock:
            self.deliveries.append(delivery)
        status = self.status if self.signature_ok(delivery) else 401
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": b"{}"})


@contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    """Serve `app` on a free loopback port in a thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None, log_level="warning", access_log=False))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


@dataclass
class NativeDelivery:
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class NativeReceiver:
    """Records native webhooks (GitHub, Stripe) as they arrive, headers and raw body; answers `status`."""

    status: int = 200
    deliveries: list[NativeDelivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self) -> list[NativeDelivery]:
        with self.lock:
            return list(self.deliveries)

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {bytes(k).decode().lower(): bytes(v).decode() for k, v in scope["headers"]}
        with self.lock:
            self.deliveries.append(NativeDelivery(headers, body, time.monotonic()))
        await send(
            {"type": "http.response.start", "status": self.status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": b"{}"})
