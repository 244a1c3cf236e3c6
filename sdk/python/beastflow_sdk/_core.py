"""What the sync and async clients share, with no I/O: requests as data, retry decisions, events.

Each API operation is a `Call` built by a function of `calls.py`; a client
sends it with its transport (httpx.Client or httpx.AsyncClient), retrying
only what `Call.retry` marks safe, and only as `RetryPolicy` allows.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from beastflow_sdk.errors import ApiError, BeastFlowError
from beastflow_sdk.models import PushResult

DEFAULT_URL = "http://localhost:8000"
USER_AGENT = "beastflow-sdk-python/0.1.0"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_BATCH = 1000  # events per request (the API refuses more)


@dataclass(frozen=True)
class Call:
    """One HTTP request of the API, and whether sending it twice is harmless."""

    method: str
    path: str
    params: Mapping[str, str | int] | None = None
    json: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # Safe to send again after a 429/502/503/504 or a broken connection: reads,
    # deletes, and pushes (whose event ids make a repeat a counted duplicate).
    retry: bool = False
    anonymous: bool = False  # no Authorization header (a push signed with the webhook secret)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a call marked safe to repeat.

    A `Retry-After` from the server is obeyed (up to `max_retry_after_s`;
    longer, the error is raised rather than sleeping for it); otherwise
    exponential backoff from `backoff_s` up to `max_backoff_s`, with full jitter.
    """

    attempts: int = 5  # in all, the first one included
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 300.0

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before attempt `attempt + 1` (attempts count from 1); None: give up."""
        if attempt >= self.attempts:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after_s else None
        return random.uniform(0, min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)))


NO_RETRY = RetryPolicy(attempts=1)


@dataclass(frozen=True)
class RetryInfo:
    """What `on_retry` hooks are told before the SDK waits and sends a call again."""

    method: str
    path: str
    attempt: int  # the attempt that failed (1 = the first)
    delay_s: float
    status: int | None  # None for a transport error
    error: str


def retry_info(call: Call, policy: RetryPolicy, attempt: int, failure: Exception) -> RetryInfo | None:
    """Whether to send `call` again after attempt `attempt` failed with `failure`; None: raise.

    `failure` is the error answer (an `ApiError`) or what broke the connection.
    Only calls marked safe to repeat are retried, on a broken connection or a
    429/502/503/504, and only as long as the policy allows.
    """
    status = failure.status if isinstance(failure, ApiError) else None
    if not call.retry or (status is not None and status not in RETRY_STATUSES):
        return None
    delay = policy.delay(attempt, failure.retry_after if isinstance(failure, ApiError) else None)
    if delay is None:
        return None
    error = failure.detail if isinstance(failure, ApiError) else repr(failure)
    return RetryInfo(call.method, call.path, attempt, delay, status, error)


def request_headers(call: Call, api_key: str | None) -> dict[str, str]:
    """The call's headers, with the API key unless the call is signed instead."""
    headers = dict(call.headers)
    if api_key and not call.anonymous:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def base_url_from(value: str | None) -> str:
    return (value or os.environ.get("BEASTFLOW_URL") or DEFAULT_URL).rstrip("/")


def api_key_from(value: str | None) -> str | None:
    return value or os.environ.get("BEASTFLOW_API_KEY") or None


def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def with_id(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event with an `id`: its own, or a fresh one fixed before the first attempt (retries reuse it)."""
    out = dict(event)
    if not out.get("id"):
        out["id"] = new_event_id()
    return out


def upsert(key: str, version: int, data: Mapping[str, Any], *, id: str | None = None, **extra: Any) -> dict[str, Any]:
    """An upsert event (`extra`: `seq`, `occurred_at`)."""
    return {"id": id or new_event_id(), "type": "upsert", "key": key, "version": version, "data": dict(data), **extra}


def delete(key: str, version: int, *, id: str | None = None, **extra: Any) -> dict[str, Any]:
    """A delete event (`extra`: `seq`, `occurred_at`)."""
    return {"id": id or new_event_id(), "type": "delete", "key": key, "version": version, **extra}


def heartbeat(*, seq: int | None = None, id: str | None = None) -> dict[str, Any]:
    """A heartbeat: the stream is alive (and, with `seq`, how far the upstream is)."""
    event: dict[str, Any] = {"id": id or new_event_id(), "type": "heartbeat"}
    if seq is not None:
        event["seq"] = seq
    return event


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def ndjson(events: Iterable[Mapping[str, Any]]) -> bytes:
    """Events as NDJSON, one per line, each with an id."""
    return b"".join(dumps(with_id(event)) + b"\n" for event in events)


def push_signature(secret: str, body: bytes) -> str:
    """`X-BeastFlow-Signature` of a push: `sha256=<hex HMAC-SHA256(webhook secret, raw body)>`."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def push_call(
    source_id: int, body: bytes, *, content_type: str = "application/json", webhook_secret: str | None = None
) -> Call:
    headers = {"Content-Type": content_type}
    if webhook_secret is not None:
        headers["X-BeastFlow-Signature"] = push_signature(webhook_secret, body)
    return Call(
        "POST",
        f"/api/v1/sources/{int(source_id)}/events",
        content=body,
        headers=headers,
        retry=True,
        anonymous=webhook_secret is not None,
    )


def chunks(events: Iterable[Mapping[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    if not 1 <= size <= MAX_BATCH:
        raise ValueError(f"batch size must be 1..{MAX_BATCH}")
    batch: list[dict[str, Any]] = []
    for event in events:
        batch.append(with_id(event))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def shift_indexes(errors: list[dict[str, Any]], offset: int) -> list[dict[str, Any]]:
    """Batch errors re-numbered to positions in the whole sequence the caller gave."""
    return [{**e, "index": e["index"] + offset} if isinstance(e.get("index"), int) else e for e in errors]


def mark_partial(exc: BeastFlowError, total: PushResult, offset: int) -> None:
    """Tell a batch push's failure what the requests before it committed (`offset` events)."""
    exc.committed = {"accepted": total["accepted"], "duplicates": total["duplicates"]}
    if isinstance(exc, ApiError) and offset:
        exc.errors = shift_indexes(exc.errors, offset)


def params(**values: Any) -> dict[str, str | int]:
    """Query parameters without the ones left unset."""
    return {name: value for name, value in values.items() if value is not None}
