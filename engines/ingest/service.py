"""What each step of an ingest request does, for both HTTP paths.

The order of the steps, and what a refusal answers, is engines/ingest/steps.py's:
the raw ASGI fast path (engines/ingest/fastpath.py) and the Django view
(engines/ingest/views.py) both run it. Here are the steps themselves:

- `route`: who asks. An API key decides the tenant, else the source's global
  id does (signed BeastFlow events, or an upstream's own webhook, carry no key);
- the source (`SourceMeta`), from the per-process SourceCache (`load_source_meta`);
- `verify`: a key of the source's tenant, else the source's push scheme
  (X-BeastFlow-Signature for `beastflow`, the upstream's own signature for
  a native scheme: docs/push.md);
- `read`: BeastFlow events, or the upstream's request through the source's push
  mapping -> events, or "ignored" (`count_push_error` counts a refusal);
- the tenant's quota (`take_quota`, `over_quota`), then `commit`.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import structlog
from django.conf import settings
from django.utils import timezone
from django_tenants.utils import schema_context
from prometheus_client import Counter, Histogram

from beastflow import crypto
from engines.connectors import schemes
from engines.connectors.push_mapping import PushProgram, parse_body
from engines.ingest import quota
from engines.ingest.commit import BatchResult, Cursor, PendingBatch, commit_batches
from engines.ingest.quota import AsyncTokenBucket, QuotaDecision, TokenBucket
from engines.ingest.validation import BodyError, Event, decode_and_validate, needs_scan, split_body, validate
from engines.models import Source
from engines.schemas import PushMapping
from tenants.middleware import bearer_token
from tenants.models import Tenant
from tenants.selectors import apikey_resolve, tenant_for_source

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-BeastFlow-Signature"
SOURCE_CACHE_TTL_S = 5.0
MAX_BODY_BYTES = 8 * 1024 * 1024

EVENTS = Counter("beastflow_ingest_events_total", "Events received by ingest", ["outcome"])
REQUESTS = Counter("beastflow_ingest_requests_total", "Ingest requests", ["status"])
NATIVE = Counter(
    "beastflow_ingest_native_requests_total",
    "Upstreams' own webhooks by push scheme and outcome (mapped, ignored, unsigned, invalid)",
    ["scheme", "outcome"],
)
COMMIT_SECONDS = Histogram(
    "beastflow_ingest_commit_seconds",
    "Time to commit one ingest transaction",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
# Where a push's time goes on the fast path (docs/observability.md): who is asking
# and for which source (auth), reading the events (validate), the transaction
# (commit), handing the changes on (publish). Children bound once: no label
# lookup per request.
STAGE_SECONDS = Histogram(
    "beastflow_ingest_stage_seconds",
    "Time of one stage of an ingest request",
    ["stage"],
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
STAGE_AUTH, STAGE_VALIDATE, STAGE_COMMIT, STAGE_PUBLISH = (
    STAGE_SECONDS.labels(name) for name in ("auth", "validate", "commit", "publish")
)


class IngestError(Exception):
    def __init__(
        self,
        status: int,
        detail: str,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}


@dataclass(frozen=True)
class SourceMeta:
    source_id: int
    schema: str
    tenant_slug: str
    rate: float
    burst: float
    secret: str = field(repr=False)
    data_check: Callable[[dict[str, Any]], str | None] | None = None
    # How key-less pushes are verified and read (docs/push.md): made once per
    # source, here, so a request only runs them. A native scheme has both a
    # verifier (its decrypted push secret and replay window) and a mapping;
    # None where the source has no usable push secret (refused: 401).
    push_scheme: str = schemes.BEASTFLOW
    push_verifier: schemes.Verifier | None = field(default=None, repr=False)
    push_mapping: PushProgram | None = None
    # The `beastflow` scheme's replay window (t=<unix>,v1=<hex>) and whether the untimed
    # sha256= form is refused (push.require_timestamp; see docs/security.md).
    push_tolerance_s: float = schemes.DEFAULT_TOLERANCE_S
    require_timestamp: bool = False

    @property
    def native(self) -> bool:
        return self.push_scheme != schemes.BEASTFLOW


@dataclass(frozen=True)
class Taken:
    """What a request brings: events, or an upstream's request its mapping ignores."""

    events: list[Event]
    native: bool = False  # the upstream's own request: its answer also counts `ignored`
    ignored: int = 0


def data_schema_check(schema: dict[str, Any]) -> Callable[[dict[str, Any]], str | None]:
    validator = jsonschema.Draft202012Validator(schema)

    def check(data: dict[str, Any]) -> str | None:
        error = jsonschema.exceptions.best_match(validator.iter_errors(data))
        if error is None:
            return None
        where = "/".join(str(part) for part in error.absolute_path)
        return f"{where or '(root)'}: {error.message}"

    return check


class SourceCache:
    """Source facts the hot path needs, cached per process for a few seconds."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, int], tuple[float, SourceMeta | None]] = {}
        self._lock = threading.Lock()

    def get(self, schema: str, source_id: int, load: Callable[[], SourceMeta | None]) -> SourceMeta | None:
        key = (schema, source_id)
        with self._lock:
            item = self._items.get(key)
        if item is not None and item[0] > time.monotonic():
            return item[1]
        meta = load()
        with self._lock:
            if len(self._items) > 50_000:
                self._items.clear()
            self._items[key] = (time.monotonic() + SOURCE_CACHE_TTL_S, meta)
        return meta

    def forget(self, schema: str, source_id: int) -> None:
        with self._lock:
            self._items.pop((schema, source_id), None)


source_cache = SourceCache()


def source_meta_from_row(
    *,
    source_id: int,
    schema: str,
    tenant_slug: str,
    rate: float,
    burst: float,
    secret_encrypted: str,
    data_schema: Any,
    push: dict[str, Any] | None = None,
    push_secret_encrypted: str = "",
) -> SourceMeta:
    data_check = data_schema_check(data_schema) if data_schema else None
    scheme = (push or {}).get("scheme") or schemes.BEASTFLOW
    verifier = program = None
    if scheme != schemes.BEASTFLOW:
        assert push is not None
        # Validated when the source was saved (engines/sources.py): compiled here once.
        program = PushProgram(PushMapping.model_validate(push["mapping"]), data_check=data_check)
        if push_secret_encrypted:
            verifier = schemes.verifier(
                scheme,
                crypto.decrypt(push_secret_encrypted),
                tolerance_s=float(push.get("tolerance_s") or schemes.DEFAULT_TOLERANCE_S),
            )
    return SourceMeta(
        source_id=source_id,
        schema=schema,
        tenant_slug=tenant_slug,
        rate=rate,
        burst=burst,
        secret=crypto.decrypt(secret_encrypted),
        data_check=data_check,
        push_scheme=scheme,
        push_verifier=verifier,
        push_mapping=program,
        push_tolerance_s=float((push or {}).get("tolerance_s") or schemes.DEFAULT_TOLERANCE_S),
        require_timestamp=bool((push or {}).get("require_timestamp", False)),
    )


def route(source_id: int, headers: Mapping[str, str], *, cached_only: bool = False) -> tuple[Tenant, bool]:
    """Who asks: (the tenant, whether by API key). `headers` have lower-cased names.

    A key decides the tenant (401 when unknown or revoked). Without one the
    source's global id does (tenants.SourceRoute): a source nobody can be
    routed to is 401 for an unsigned request, 404 for a signed one.
    `cached_only`: tenants.selectors.CacheMiss rather than a query.
    """
    authorization = headers.get("authorization")
    if authorization:
        token = bearer_token(authorization)
        resolved = apikey_resolve(token, cached_only=cached_only) if token else None
        if resolved is None:
            raise IngestError(401, "The API key is unknown or revoked.")
        return resolved.tenant, True
    found = tenant_for_source(source_id, cached_only=cached_only)
    if found is None:
        if not headers.get("x-beastflow-signature"):
            raise IngestError(401, "Send an API key or a signed body.")
        raise IngestError(404, "No such source.")
    return found, False


def load_source_meta(tenant: Tenant, source_id: int) -> SourceMeta | None:
    """The source's facts from its tenant's schema (SourceCache's loader), None when it has no such source."""
    with schema_context(tenant.schema_name):
        row = (
            Source.objects.filter(pk=source_id)
            .values_list("webhook_secret_encrypted", "data_schema", "push", "push_secret_encrypted")
            .first()
        )
    if row is None:
        return None
    return source_meta_from_row(
        source_id=source_id,
        schema=tenant.schema_name,
        tenant_slug=tenant.slug,
        rate=tenant.ingest_rate_per_s,
        burst=tenant.ingest_burst,
        secret_encrypted=row[0],
        data_schema=row[1],
        push=row[2],
        push_secret_encrypted=row[3],
    )


def authorize(meta: SourceMeta, *, has_key: bool, signature: str | None, body: bytes) -> None:
    """A valid API key of the source's tenant, or a valid signature of the body."""
    if has_key:
        return
    if not signature:
        raise IngestError(401, f"Send an API key or an {SIGNATURE_HEADER} header.")
    try:
        schemes.check_beastflow_signature(
            meta.secret.encode(),
            signature,
            body,
            tolerance_s=meta.push_tolerance_s,
            require_timestamp=meta.require_timestamp,
        )
    except schemes.SignatureError as exc:
        raise IngestError(401, exc.detail) from exc


def verify(meta: SourceMeta, *, has_key: bool, headers: Mapping[str, str], body: bytes) -> bool:
    """Step 3: may this request push to the source? True when it is the upstream's own request (native).

    A key of the source's tenant always may, with BeastFlow events, whatever the
    scheme. Without one the source's scheme decides: `beastflow` checks
    X-BeastFlow-Signature, a native scheme the upstream's own signature.
    `headers` have lower-cased names.
    """
    if has_key or not meta.native:
        authorize(meta, has_key=has_key, signature=headers.get("x-beastflow-signature"), body=body)
        return False
    if meta.push_verifier is None:
        NATIVE.labels(meta.push_scheme, "unsigned").inc()
        raise IngestError(401, "The source has no push secret to verify its upstream's webhooks with.")
    try:
        meta.push_verifier.verify(headers, body)
    except schemes.SignatureError as exc:
        NATIVE.labels(meta.push_scheme, "unsigned").inc()
        raise IngestError(401, exc.detail) from exc
    return True


def read(meta: SourceMeta, *, native: bool, headers: Mapping[str, str], body: bytes, content_type: str) -> Taken:
    """Step 4: the request's events (IngestError 400/413/422: the caller counts a push error)."""
    if not native:
        return Taken(parse(meta, body, content_type))
    assert meta.push_mapping is not None
    if len(body) > MAX_BODY_BYTES:
        raise IngestError(413, f"The body is over {MAX_BODY_BYTES} bytes.")
    try:
        parsed = parse_body(body, content_type)
    except BodyError as exc:
        raise IngestError(exc.status, exc.detail, exc.errors) from exc
    mapped = meta.push_mapping.run(headers, parsed)
    if mapped.errors:
        raise IngestError(422, "The source's push mapping cannot read this request; nothing was stored.", mapped.errors)
    if mapped.ignored:
        NATIVE.labels(meta.push_scheme, "ignored").inc()
        log.debug("ingest_ignored", source=meta.source_id, scheme=meta.push_scheme)
        return Taken([], native=True, ignored=1)
    NATIVE.labels(meta.push_scheme, "mapped").inc()
    return Taken(mapped.events, native=True)


def answer(taken: Taken, result: BatchResult | None) -> dict[str, int]:
    """The 202's body: accepted and duplicates, and `ignored` for an upstream's own request."""
    body = {
        "accepted": result.accepted if result is not None else 0,
        "duplicates": result.duplicates if result is not None else 0,
    }
    if taken.native:
        body["ignored"] = taken.ignored
    return body


@functools.cache
def _bucket() -> TokenBucket:
    return TokenBucket(quota.client(settings.REDIS_URL), settings.REDIS_PREFIX)


_async_buckets: dict[int, tuple[asyncio.AbstractEventLoop, AsyncTokenBucket]] = {}


def _async_bucket() -> AsyncTokenBucket:
    """One per event loop: an asyncio Redis client belongs to the loop that made it."""
    loop = asyncio.get_running_loop()
    found = _async_buckets.get(id(loop))
    if found is None or found[0] is not loop:
        client = quota.async_client(settings.REDIS_URL)
        found = _async_buckets[id(loop)] = (loop, AsyncTokenBucket(client, settings.REDIS_PREFIX))
    return found[1]


# The quota's I/O, from a thread or from an event loop: the decisions are
# quota.py's (one implementation for both clients), what a refusal answers is
# `over_quota`'s, and when the quota is taken is engines/ingest/steps.py's.
def take_quota(tenant: str, costs: list[int], *, rate: float, burst: float) -> list[QuotaDecision]:
    return _bucket().take_each(tenant, costs, rate=rate, burst=burst)


async def take_quota_async(tenant: str, costs: list[int], *, rate: float, burst: float) -> list[QuotaDecision]:
    return await _async_bucket().take_each(tenant, costs, rate=rate, burst=burst)


def over_quota(meta: SourceMeta, retry_after_s: int) -> IngestError:
    return IngestError(
        429, f"Over the tenant's ingest quota of {meta.rate:g} events/s.", headers={"Retry-After": str(retry_after_s)}
    )


def parse(meta: SourceMeta, body: bytes, content_type: str) -> list[Event]:
    if len(body) > MAX_BODY_BYTES:
        raise IngestError(413, f"The body is over {MAX_BODY_BYTES} bytes.")
    batch = decode_and_validate(body, content_type, data_check=meta.data_check)
    if batch is None:  # not a well-typed JSON batch: the general path names the problems
        try:
            items = split_body(body, content_type)
        except BodyError as exc:
            raise IngestError(exc.status, exc.detail, exc.errors) from exc
        batch = validate(items, data_check=meta.data_check, scan=needs_scan(body))
    if batch.errors:
        raise IngestError(422, "The batch has invalid events; nothing was stored.", batch.errors)
    return batch.events


def count_push_error(cursor: Cursor, source_id: int, *, scheme: str | None = None) -> None:
    """A push that `read` refused; `scheme` where it was an upstream's own request."""
    cursor.execute(
        "UPDATE engines_streamstate SET push_errors_total = push_errors_total + 1 WHERE source_id = %s", [source_id]
    )
    # Counted after the query: the fast path retries a request in a thread when
    # the query is refused on its event loop, and must not count it twice.
    if scheme is not None:
        NATIVE.labels(scheme, "invalid").inc()


def commit(cursor: Cursor, batches: list[PendingBatch]) -> list[BatchResult]:
    """Run the commit path in the caller's transaction, timed."""
    started = time.perf_counter()
    results = commit_batches(cursor, batches, now=timezone.now())
    COMMIT_SECONDS.observe(time.perf_counter() - started)
    return results


def record_outcome(status: int, result: BatchResult | None = None, *, ignored: int = 0) -> None:
    REQUESTS.labels(status=str(status)).inc()
    if ignored:
        EVENTS.labels(outcome="ignored").inc(ignored)
    if result is not None:
        EVENTS.labels(outcome="accepted").inc(result.accepted)
        if result.duplicates:
            EVENTS.labels(outcome="duplicate").inc(result.duplicates)
