"""The HTTP call of a delivery: one signed POST, its outcome as plain data."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import httpx

from beastflow.netguard import ForbiddenAddressError, guarded_client
from callbacks.metrics import DELIVERIES, DELIVERY_SECONDS
from callbacks.policy import DeliveryPolicy
from callbacks.signing import SUBSCRIPTION_HEADER, Scheme, signed_headers
from engines.polling_policy import parse_retry_after

USER_AGENT = "BeastFlow-Callbacks/1"
_ERROR_MAX = 500
_SNIPPET_BYTES = 200


@dataclass(frozen=True)
class Outcome:
    ok: bool
    http_status: int | None  # None: no answer (connection error, timeout)
    error: str
    retry_after_s: float | None
    duration_ms: float


_clients: dict[int, httpx.Client] = {}
_clients_lock = threading.Lock()


def _client() -> httpx.Client:
    # One pooled client per process (keep-alive to endpoints), never shared
    # across a fork: Celery's prefork children each build their own.
    pid = os.getpid()
    client = _clients.get(pid)
    if client is None:
        with _clients_lock:
            client = _clients.get(pid)
            if client is None:
                # Guarded (beastflow/netguard.py): a subscription URL never reaches our own
                # network. Redirects are not followed: a redirected POST is the endpoint's mistake.
                client = guarded_client(
                    headers={"User-Agent": USER_AGENT},
                    limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
                )
                _clients.clear()
                _clients[pid] = client
    return client


def _observed(outcome: Outcome, scheme: str) -> Outcome:
    if outcome.ok:
        label = "ok"
    elif outcome.http_status is None:
        label = "no_answer"
    else:
        label = f"http_{outcome.http_status // 100}xx"
    DELIVERIES.labels(signature=scheme, outcome=label).inc()
    DELIVERY_SECONDS.observe(outcome.duration_ms / 1000)
    return outcome


def post_changes(
    *,
    url: str,
    body: bytes,
    secret: str,
    subscription_id: int,
    timestamp: int,
    policy: DeliveryPolicy,
    scheme: str = Scheme.BEASTFLOW,
    message_id: str = "",
) -> Outcome:
    headers = {
        "Content-Type": "application/json",
        **signed_headers(scheme, secret, body, timestamp=timestamp, message_id=message_id),
        SUBSCRIPTION_HEADER: str(subscription_id),
    }
    return _observed(_post(url=url, body=body, headers=headers, policy=policy), scheme)


def _post(*, url: str, body: bytes, headers: dict[str, str], policy: DeliveryPolicy) -> Outcome:
    timeout = httpx.Timeout(policy.timeout_s, connect=policy.connect_timeout_s)
    started = time.perf_counter()
    try:
        # Streamed: only the start of an error body is read, however much the endpoint sends.
        with _client().stream("POST", url, content=body, headers=headers, timeout=timeout) as response:
            status = response.status_code
            head = b"" if 200 <= status < 300 else _read_at_most(response, _SNIPPET_BYTES)
    except ForbiddenAddressError as exc:
        return _no_answer(f"forbidden: {exc}", started)
    except httpx.TimeoutException as exc:
        return _no_answer(f"timeout: {type(exc).__name__}", started)
    except httpx.HTTPError as exc:
        return _no_answer(f"{type(exc).__name__}: {exc}", started)
    duration_ms = (time.perf_counter() - started) * 1000
    if 200 <= status < 300:
        return Outcome(ok=True, http_status=status, error="", retry_after_s=None, duration_ms=duration_ms)
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=time.time())
    snippet = head.decode("utf-8", "replace").strip()
    error = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    return Outcome(
        ok=False, http_status=status, error=error[:_ERROR_MAX], retry_after_s=retry_after, duration_ms=duration_ms
    )


def _read_at_most(response: httpx.Response, limit: int) -> bytes:
    head = b""
    for chunk in response.iter_bytes():
        head += chunk
        if len(head) >= limit:
            break
    return head[:limit]


def _no_answer(error: str, started: float) -> Outcome:
    return Outcome(
        ok=False,
        http_status=None,
        error=error[:_ERROR_MAX],
        retry_after_s=None,
        duration_ms=(time.perf_counter() - started) * 1000,
    )
