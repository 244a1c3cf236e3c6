"""The `http` connector: what BeastFlow calls on an upstream (docs/contract.md §6).

Used for connector `http` and for the built-in `simulator`, which speaks the
same protocol. Three calls:

- `fetch_changes`: one page of the change feed, `GET {poll_url}?after=&limit=`;
- `fetch_snapshot_page`: one page of the snapshot (or of one digest bucket);
- `fetch_digests`: the 256 bucket digests, `GET {snapshot_url}?digest=1`.

Every call sends `config.headers` and waits at most `config.timeout_s` per
network step; `http_get` is the one request function, shared with the
`rest` connector (engines/connectors/rest.py). Every failure raises `UpstreamError` with a `kind` that is a
failure kind and an RCA category (docs/contract.md §7), so the engines report it
as is. Bodies are only checked for shape here; events are validated by the
caller exactly like a push (engines.ingest.validation).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import httpx
import msgspec
from prometheus_client import Counter

from beastflow.netguard import ForbiddenAddressError, guarded_client
from engines.connectors.rest_paging import rate_limit_wait
from engines.polling_policy import parse_retry_after
from engines.schemas import HttpConnectorConfig

USER_AGENT = "BeastFlow/1 (+connector http)"
# How much of an error body goes into the failure's detail: enough for the
# upstream's own explanation (problem+json), not a whole HTML error page.
ERROR_BODY_EXCERPT = 300

# Every upstream request of polls and reconciliations, by what came of it:
# ok, not_modified (304), or the ErrorKind it raised (a 2xx whose body has the
# wrong shape is counted ok here and as schema_invalid by the poll).
POLL_REQUESTS = Counter(
    "beastflow_poll_requests_total", "Requests to upstreams by polls and reconciliations", ["outcome"]
)


class ErrorKind(StrEnum):
    """Why an upstream call failed; values are healing FailureKind values."""

    UPSTREAM_UNAVAILABLE = "upstream_unavailable"  # refused, reset, 5xx
    UPSTREAM_TIMEOUT = "upstream_timeout"  # no answer in time, 504
    RATE_LIMITED = "rate_limited"  # 429
    AUTH_FAILED = "auth_failed"  # 401, 403
    SCHEMA_INVALID = "schema_invalid"  # not JSON, wrong shape, invalid events
    # Any other non-2xx (404 from a wrong URL, 400, a redirect): the request
    # itself is wrong. RCA has no category for it: it lands in `unknown`.
    REQUEST_REJECTED = "poll_error"
    # The URL's host resolves to an address the outbound guard refuses
    # (loopback, private, link-local, ...; see docs/security.md). The
    # configuration is wrong, not the upstream: RCA files it under `unknown`.
    UPSTREAM_FORBIDDEN = "upstream_forbidden"


# Failures that say the host is down (they count for its circuit breaker);
# the others prove the host answered.
HOST_DOWN_KINDS = frozenset({ErrorKind.UPSTREAM_UNAVAILABLE, ErrorKind.UPSTREAM_TIMEOUT})


class UpstreamError(Exception):
    """A failed upstream call, classified."""

    def __init__(
        self,
        kind: ErrorKind,
        detail: str,
        *,
        host: str,
        http_status: int | None = None,
        retry_after_s: float | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(f"{kind.value}: {detail}")
        self.kind = kind
        self.detail = detail
        self.host = host
        self.http_status = http_status
        self.retry_after_s = retry_after_s
        self.errors = errors or []  # per-item problems (index, message) of an invalid body

    @property
    def host_down(self) -> bool:
        return self.kind in HOST_DOWN_KINDS


@dataclass(frozen=True)
class FeedPage:
    """One page of the change feed: raw event objects, seq ascending."""

    events: list[Any]
    has_more: bool
    http_status: int


class UpstreamRecord(msgspec.Struct, frozen=True):
    """One record of an upstream snapshot (docs/contract.md §6)."""

    key: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
    version: Annotated[int, msgspec.Meta(ge=0)]
    data: dict[str, Any]


@dataclass(frozen=True)
class SnapshotPage:
    records: list[UpstreamRecord]
    next_page_token: str | None
    http_status: int


class _FeedBody(msgspec.Struct):
    events: list[Any]
    has_more: bool


class _SnapshotBody(msgspec.Struct):
    records: list[UpstreamRecord]
    # Required, not defaulted: a missing token read as "last page" would make
    # reconciliation see every later record as deleted upstream.
    next_page_token: str | None


class _DigestBody(msgspec.Struct):
    buckets: dict[str, str]


T = TypeVar("T")

BUCKETS = tuple(f"{i:02x}" for i in range(256))
_HEX64 = re.compile(r"[0-9a-f]{64}")


def fetch_changes(config: HttpConnectorConfig, *, after: int, limit: int) -> FeedPage:
    """`GET {poll_url}?after=<seq>&limit=<n>` -> the page. Raises UpstreamError."""
    url = str(config.poll_url)
    response = _get(config, url, {"after": str(after), "limit": str(limit)})
    body = _decode(response, _FeedBody, url)
    return FeedPage(events=body.events, has_more=body.has_more, http_status=response.status_code)


def fetch_snapshot_page(
    config: HttpConnectorConfig, *, page_token: str | None, limit: int, bucket: str | None = None
) -> SnapshotPage:
    """One snapshot page (of one bucket when `bucket` is given). Raises UpstreamError."""
    url = _snapshot_url(config)
    params = {"limit": str(limit)}
    if page_token:
        params["page_token"] = page_token
    if bucket is not None:
        params["bucket"] = bucket
    response = _get(config, url, params)
    body = _decode(response, _SnapshotBody, url)
    return SnapshotPage(records=body.records, next_page_token=body.next_page_token, http_status=response.status_code)


def fetch_digests(config: HttpConnectorConfig, *, bucket: str | None = None) -> dict[str, str]:
    """`GET {snapshot_url}?digest=1` -> {"00": hex, ..., "ff": hex}. Raises UpstreamError.

    An upstream without digests answers with an error status (typically
    400 or 404: kind `poll_error`); the caller falls back to a full snapshot.
    With `bucket` ("ab"), the digests of its 256 sub-buckets, {"ab00": hex,
    ..., "abff": hex}: an optional extension of docs/contract.md §6 that upstreams
    may not offer (same error statuses, same fallback: fetch the bucket).
    """
    url = _snapshot_url(config)
    params = {"digest": "1"} if bucket is None else {"digest": "1", "bucket": bucket}
    response = _get(config, url, params)
    buckets = _decode(response, _DigestBody, url).buckets
    expected = [f"{bucket or ''}{child}" for child in BUCKETS]
    if sorted(buckets) != expected or not all(_HEX64.fullmatch(digest) for digest in buckets.values()):
        raise UpstreamError(
            ErrorKind.SCHEMA_INVALID,
            f"GET {url}: digests must be 256 buckets {expected[0]}..{expected[-1]} of sha256 hex",
            host=upstream_host(url),
            http_status=response.status_code,
        )
    return buckets


def upstream_host(url: str) -> str:
    """`scheme://host:port` of a URL, the port always spelled out (the breaker's key)."""
    parsed = httpx.URL(url)
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme, 0)
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return f"{parsed.scheme}://{host}:{port}"


# -- HTTP ------------------------------------------------------------------------


@dataclass
class _Client:
    """One httpx.Client per process: polls reuse its kept-alive connections.

    Created on first use rather than at import, and again after a fork:
    Celery's prefork children must not share the parent's sockets.
    """

    lock: threading.Lock = field(default_factory=threading.Lock)
    pid: int = 0
    client: httpx.Client | None = None

    def get(self) -> httpx.Client:
        if self.client is not None and self.pid == os.getpid():
            return self.client
        with self.lock:
            if self.client is None or self.pid != os.getpid():
                # Guarded (beastflow/netguard.py): a tenant's URL never reaches our own network.
                # Redirects are not followed: a redirect is a misconfigured URL, reported.
                self.client = guarded_client(
                    headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
                    limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
                )
                self.pid = os.getpid()
            return self.client


_client = _Client()


def _get(config: HttpConnectorConfig, url: str, params: Mapping[str, str]) -> httpx.Response:
    return http_get(url, params, headers=config.headers, timeout_s=config.timeout_s)


def http_get(
    url: str,
    params: Mapping[str, str] | None,
    *,
    headers: Mapping[str, str],
    timeout_s: float,
    not_modified_ok: bool = False,
) -> httpx.Response:
    """GET on the shared client; every failure raised as a classified UpstreamError.

    The one request function of the connectors (`http` here, `rest` in
    engines/connectors/rest.py). `not_modified_ok`: a 304 (the answer to If-None-Match)
    is returned, not raised.
    """
    host = upstream_host(url)
    try:
        response = _client.get().get(url, params=params, headers=headers, timeout=timeout_s)
    except ForbiddenAddressError as exc:
        POLL_REQUESTS.labels(ErrorKind.UPSTREAM_FORBIDDEN.value).inc()
        raise UpstreamError(ErrorKind.UPSTREAM_FORBIDDEN, f"GET {url}: {exc}", host=host) from exc
    except httpx.TimeoutException as exc:
        POLL_REQUESTS.labels(ErrorKind.UPSTREAM_TIMEOUT.value).inc()
        raise UpstreamError(
            ErrorKind.UPSTREAM_TIMEOUT, f"GET {url}: no answer within {timeout_s:g}s", host=host
        ) from exc
    except httpx.TransportError as exc:  # refused, reset, DNS, a connection closed mid-response
        POLL_REQUESTS.labels(ErrorKind.UPSTREAM_UNAVAILABLE.value).inc()
        raise UpstreamError(
            ErrorKind.UPSTREAM_UNAVAILABLE, f"GET {url}: {type(exc).__name__}: {exc}", host=host
        ) from exc
    if response.status_code == 304 and not_modified_ok:
        POLL_REQUESTS.labels("not_modified").inc()
        return response
    if not response.is_success:
        error = _status_error(response, url, host)
        POLL_REQUESTS.labels(error.kind.value).inc()
        raise error
    POLL_REQUESTS.labels("ok").inc()
    return response


def _status_error(response: httpx.Response, url: str, host: str) -> UpstreamError:
    status = response.status_code
    now = time.time()
    # GitHub refuses a spent rate limit with 403 and X-RateLimit-Remaining: 0: not an auth failure.
    limit_wait = rate_limit_wait(response.headers, now=now) if status in (403, 429) else None
    if status == 429 or limit_wait is not None:
        kind = ErrorKind.RATE_LIMITED
    elif status in (401, 403):
        kind = ErrorKind.AUTH_FAILED
    elif status in (408, 504):  # the upstream (or its gateway) gave up waiting
        kind = ErrorKind.UPSTREAM_TIMEOUT
    elif status >= 500:
        kind = ErrorKind.UPSTREAM_UNAVAILABLE
    else:
        kind = ErrorKind.REQUEST_REJECTED
    excerpt = response.text[:ERROR_BODY_EXCERPT].strip()
    return UpstreamError(
        kind,
        f"GET {url}: HTTP {status} {response.reason_phrase}" + (f": {excerpt}" if excerpt else ""),
        host=host,
        http_status=status,
        # 429 and 503 carry it by RFC 9110; honoured whatever the status. Else the rate limit's reset.
        retry_after_s=_first(parse_retry_after(response.headers.get("retry-after"), now=now), limit_wait),
    )


def _first(*values: float | None) -> float | None:
    return next((value for value in values if value is not None), None)


def _decode(response: httpx.Response, shape: type[T], url: str) -> T:
    try:
        return msgspec.json.decode(response.content, type=shape)
    except msgspec.ValidationError as exc:
        problem = f"wrong shape: {exc}"
    except msgspec.DecodeError as exc:
        problem = f"not JSON: {exc}"
    raise UpstreamError(
        ErrorKind.SCHEMA_INVALID, f"GET {url}: {problem}", host=upstream_host(url), http_status=response.status_code
    )


def _snapshot_url(config: HttpConnectorConfig) -> str:
    if config.snapshot_url is None:
        raise ValueError("the source's connector config has no snapshot_url")
    return str(config.snapshot_url)
