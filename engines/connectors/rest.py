"""The `rest` connector: an upstream's own list API (see docs/rest-connector.md).

Used by the PollingEngine (a since-query from the watermark, page by page)
and by reconciliation (the full listing, streamed). One call,
`fetch_listing_page`, fetches one page of a listing through the connectors'
shared request function (`engines.connectors.http.http_get`: same client, same
failure kinds, same error details as `http`) and says how to ask for the
next one (`Link` header, a cursor from the body, or a page number).

Rate limits are honoured on every call: a response with
`X-RateLimit-Remaining: 0` closes a window until `X-RateLimit-Reset`, and so
does a 429/403 with Retry-After or a reset; while a window is closed no call
goes out (`RateLimitClosedError`). Windows are kept in Redis per upstream host
and credentials (the `headers`), so every source and engine using one
token waits alike; Redis is soft state: after a flush the upstream's next
answer closes the window again.

The pure parts (Link parsing, cursors, watermarks, record mapping) are in
engines/connectors/rest_paging.py.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import redis
import structlog

from beastflow.redis_client import get_redis, key
from engines.connectors.http import ErrorKind, UpstreamError, http_get, upstream_host
from engines.connectors.mapping import MappingError
from engines.connectors.rest_paging import (
    MappedRecord,
    RecordMapping,
    cursor_next,
    fill,
    map_record,
    next_link,
    rate_limit_wait,
    raw_event,
    records_of,
)
from engines.ingest.plan import record_hash
from engines.ingest.validation import Batch, validate
from engines.schemas import RestConnectorConfig

log = structlog.get_logger(__name__)

# A reconciliation waits out a closed rate-limit window up to this long;
# past it the run fails as rate_limited with the reset as its Retry-After.
SNAPSHOT_MAX_WAIT_S = 60.0
# The keys of a window outlive it a little, never for long (soft state).
_WINDOW_TTL_MARGIN_S = 60


@dataclass(frozen=True)
class Listing:
    """One listing of the upstream: where its first page is and how its records map."""

    url: str
    params: dict[str, str]
    records: str | None
    mapping: RecordMapping


@dataclass(frozen=True)
class PageRequest:
    """One page to fetch: a full URL (a `Link` target) or the listing's URL with params."""

    url: str
    params: dict[str, str] | None
    number: int = 0  # pages fetched before it in this listing

    def spelled(self) -> str:
        """The request as one string (for the ETag's key and loop detection)."""
        return str(httpx.URL(self.url, params=self.params)) if self.params else self.url


@dataclass(frozen=True)
class ListingPage:
    records: list[Any]  # the listed records, raw
    next: PageRequest | None  # None on the last page
    http_status: int
    not_modified: bool = False  # a 304: nothing changed since the ETag
    etag: str | None = None
    rate_limit_wait_s: float | None = None  # the upstream's window just closed for this long


class RateLimitClosedError(Exception):
    """No call may go out before `until` (epoch seconds): the upstream's rate-limit window is closed."""

    def __init__(self, until: float, host: str) -> None:
        super().__init__(f"rate limit of {host} spent until {until:.0f}")
        self.until = until
        self.host = host

    def wait_s(self, now: float | None = None) -> float:
        return max(0.0, self.until - (time.time() if now is None else now))


# -- listings ----------------------------------------------------------------------


def poll_listing(config: RestConnectorConfig, *, since: str | None) -> Listing:
    """The since-query: `list_path` with `params`, and `since_param` when there is a watermark."""
    values = config.template_values()
    params = {name: fill(value, values, path=False) for name, value in config.params.items()}
    if since is not None and config.since_param:
        params[config.since_param] = since
    return Listing(
        url=_join(config, fill(config.list_path, values, path=True)),
        params=params,
        records=config.records,
        mapping=_mapping(config, since_field=config.since_field),
    )


def snapshot_listing(config: RestConnectorConfig) -> Listing:
    """The full listing for reconciliation: `snapshot` when given, else `list_path` without `since_param`."""
    if config.snapshot is None:
        return poll_listing(config, since=None)
    values = config.template_values()
    snap = config.snapshot
    return Listing(
        url=_join(config, fill(snap.path, values, path=True)),
        params={name: fill(value, values, path=False) for name, value in snap.params.items()},
        records=snap.records,
        mapping=RecordMapping(key=snap.key, version=snap.version, op=snap.op, data=snap.data),
    )


def first_request(config: RestConnectorConfig, listing: Listing) -> PageRequest:
    params = dict(listing.params)
    if config.pagination.style == "page":
        assert config.pagination.param is not None  # the schema requires it
        params[config.pagination.param] = str(config.pagination.start)
    return PageRequest(url=listing.url, params=params)


def host_of(config: RestConnectorConfig) -> str:
    return upstream_host(str(config.base_url))


def _join(config: RestConnectorConfig, path: str) -> str:
    if path.startswith(("http://", "https://")):
        return path
    return str(config.base_url).rstrip("/") + "/" + path.lstrip("/")


def _mapping(config: RestConnectorConfig, *, since_field: str | None) -> RecordMapping:
    return RecordMapping(
        key=config.key, version=config.version, op=config.op, data=config.data, since_field=since_field
    )


# -- one page ----------------------------------------------------------------------


def fetch_listing_page(
    config: RestConnectorConfig, listing: Listing, request: PageRequest, *, etag: str | None = None
) -> ListingPage:
    """One page of `listing`. Raises UpstreamError, or RateLimitClosedError (no call made) while the window is closed.

    With `etag`, the request is conditional (If-None-Match) and a 304 comes
    back as a page with `not_modified` and no records.
    """
    host = host_of(config)
    until = rate_limit_until(config)
    if until is not None and until > time.time():
        raise RateLimitClosedError(until, host)
    headers = dict(config.headers)
    if etag:
        headers["If-None-Match"] = etag
    try:
        response = http_get(
            request.url, request.params, headers=headers, timeout_s=config.timeout_s, not_modified_ok=bool(etag)
        )
    except UpstreamError as exc:
        if exc.kind is ErrorKind.RATE_LIMITED and exc.retry_after_s:
            rate_limit_note(config, exc.retry_after_s)
        raise
    wait = rate_limit_wait(response.headers, now=time.time())
    if wait is not None:
        rate_limit_note(config, wait)
    if response.status_code == 304:
        return ListingPage(records=[], next=None, http_status=304, not_modified=True, etag=etag, rate_limit_wait_s=wait)
    url = request.spelled()
    try:
        body = msgspec.json.decode(response.content)
    except msgspec.DecodeError as exc:
        raise _invalid(f"GET {url}: not JSON: {exc}", host, response.status_code) from exc
    try:
        records = records_of(body, listing.records)
        following = _next_request(config, listing, request, response, body, records)
    except MappingError as exc:
        raise _invalid(f"GET {url}: {exc}", host, response.status_code) from exc
    return ListingPage(
        records=records,
        next=following,
        http_status=response.status_code,
        etag=response.headers.get("etag"),
        rate_limit_wait_s=wait,
    )


def _next_request(
    config: RestConnectorConfig,
    listing: Listing,
    request: PageRequest,
    response: httpx.Response,
    body: Any,
    records: list[Any],
) -> PageRequest | None:
    pagination = config.pagination
    number = request.number + 1
    if pagination.style == "none":
        return None
    if pagination.style == "link":
        target = next_link(response.headers)
        if target is None:
            return None
        absolute = str(response.request.url.join(target))
        if upstream_host(absolute) != host_of(config):
            # The credentials in `headers` go to base_url's host only.
            raise MappingError("pagination", f"the next page {absolute} is on another host than base_url")
        if absolute == str(response.request.url):
            raise MappingError("pagination", "the Link header's next page is this page")
        return PageRequest(url=absolute, params=None, number=number)
    if pagination.style == "cursor":
        assert pagination.next is not None and pagination.param is not None  # the schema requires them
        cursor = cursor_next(body, pagination.next)
        if cursor is None:
            return None
        if request.params and request.params.get(pagination.param) == cursor:
            raise MappingError("pagination.next", f"the cursor {cursor!r} repeats this page's")
        return PageRequest(url=request.url, params={**(request.params or {}), pagination.param: cursor}, number=number)
    # page numbers: an empty page is the last
    assert pagination.param is not None
    if not records:
        return None
    current = int((request.params or {}).get(pagination.param, pagination.start))
    return PageRequest(
        url=request.url, params={**(request.params or {}), pagination.param: str(current + 1)}, number=number
    )


def _invalid(detail: str, host: str, status: int | None) -> UpstreamError:
    return UpstreamError(ErrorKind.SCHEMA_INVALID, detail, host=host, http_status=status)


# -- records -----------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedPage:
    """A page's records as validated events (id `<key>:<version>`), with each one's since time."""

    batch: Batch
    since: dict[str, int | None]  # event id -> since-field time, epoch microseconds


def page_events(
    page: ListingPage,
    listing: Listing,
    *,
    host: str,
    data_check: Callable[[dict[str, Any]], str | None] | None,
) -> CheckedPage:
    """The page's records mapped and validated like a push; any bad record refuses the page (schema_invalid).

    A record listed twice in one page at one version is taken once (the id
    is the same, and the commit would fold it anyway).
    """
    raw: list[dict[str, Any]] = []
    since: dict[str, int | None] = {}
    for position, item in enumerate(page.records):
        try:
            record = map_record(item, listing.mapping)
        except MappingError as exc:
            raise UpstreamError(
                ErrorKind.SCHEMA_INVALID,
                f"record {position} of the page: {exc}",
                host=host,
                http_status=page.http_status,
                errors=[{"index": position, "field": exc.field, "message": exc.message}],
            ) from exc
        event = raw_event(record)
        if event["id"] in since:
            continue
        since[event["id"]] = record.since_us
        raw.append(event)
    batch = validate(raw, data_check=data_check)
    if batch.errors:
        first = batch.errors[0]
        raise UpstreamError(
            ErrorKind.SCHEMA_INVALID,
            f"{len({e.get('index') for e in batch.errors})} invalid record(s) in the page: "
            f"{first.get('index')}: {first['message']}",
            host=host,
            http_status=page.http_status,
            errors=batch.errors[:5],
        )
    return CheckedPage(batch=batch, since=since)


@dataclass(frozen=True, slots=True)
class SnapshotItem:
    """One upstream record for reconciliation (the shape engines.reconcile.upstream.Item has)."""

    key: str
    version: int
    hash: str
    data: dict[str, Any]


def snapshot_items(
    config: RestConnectorConfig,
    *,
    data_check: Callable[[dict[str, Any]], str | None] | None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[tuple[list[SnapshotItem], int]]:
    """Every page of the full listing as (items, http status), streamed: one page in memory at a time.

    A record the listing shows as deleted (`op` gives "delete") is left out,
    so reconciliation deletes it here too. A closed rate-limit window is
    waited out when it reopens within SNAPSHOT_MAX_WAIT_S; otherwise the
    listing fails as rate_limited with the reset as its Retry-After.
    """
    listing = snapshot_listing(config)
    host = host_of(config)
    request: PageRequest | None = first_request(config, listing)
    previous_digest: str | None = None
    while request is not None:
        try:
            page = fetch_listing_page(config, listing, request)
        except RateLimitClosedError as closed:
            wait = closed.wait_s()
            if wait > SNAPSHOT_MAX_WAIT_S:
                raise UpstreamError(
                    ErrorKind.RATE_LIMITED,
                    f"the rate limit of {host} is spent for {wait:.0f}s more",
                    host=host,
                    retry_after_s=wait,
                ) from closed
            log.info("rest_snapshot_waits_for_rate_limit", host=host, wait_s=round(wait, 3))
            sleep(wait)
            continue
        digest = hashlib.sha256(json.dumps(page.records, sort_keys=True, default=str).encode()).hexdigest()
        if page.records and digest == previous_digest:
            raise _invalid(f"GET {request.spelled()}: the listing repeats the previous page", host, page.http_status)
        previous_digest = digest
        yield _snapshot_page(page, listing, host=host, data_check=data_check), page.http_status
        request = page.next


def _snapshot_page(
    page: ListingPage, listing: Listing, *, host: str, data_check: Callable[[dict[str, Any]], str | None] | None
) -> list[SnapshotItem]:
    items: list[SnapshotItem] = []
    seen: set[str] = set()
    for position, raw in enumerate(page.records):
        try:
            record: MappedRecord = map_record(raw, listing.mapping)
        except MappingError as exc:
            raise UpstreamError(
                ErrorKind.SCHEMA_INVALID,
                f"snapshot record {position}: {exc}",
                host=host,
                http_status=page.http_status,
                errors=[{"index": position, "field": exc.field, "message": exc.message}],
            ) from exc
        if record.op == "delete" or record.key in seen:
            continue
        seen.add(record.key)
        problem = data_check(record.data) if data_check is not None else None
        if problem is not None:
            raise UpstreamError(
                ErrorKind.SCHEMA_INVALID,
                f"snapshot record {record.key!r}: {problem}",
                host=host,
                http_status=page.http_status,
                errors=[{"index": position, "message": problem}],
            )
        items.append(SnapshotItem(record.key, record.version, record_hash(record.data), record.data))
    return items


# -- rate-limit windows (soft state in Redis) --------------------------------------


def rate_limit_key(config: RestConnectorConfig) -> str:
    # Per host and credentials: a rate limit belongs to a token, not to a source.
    credentials = hashlib.sha256(json.dumps(config.headers, sort_keys=True).encode()).hexdigest()[:16]
    return key("ratelimit", host_of(config), credentials)


def rate_limit_until(config: RestConnectorConfig) -> float | None:
    """When the closed window reopens (epoch seconds), or None. Redis unreachable: open."""
    try:
        raw = get_redis().get(rate_limit_key(config))
    except redis.RedisError as exc:
        log.warning("rate_limit_window_unavailable", host=host_of(config), error=str(exc))
        return None
    return float(raw) if raw else None


def rate_limit_note(config: RestConnectorConfig, wait_s: float) -> None:
    """Close the window for `wait_s` seconds from now (never shortening a longer one already noted)."""
    if wait_s <= 0:
        return
    until = time.time() + wait_s
    name = rate_limit_key(config)
    try:
        client = get_redis()
        current = client.get(name)
        if current is not None and float(current) >= until:
            return
        client.set(name, repr(until), ex=int(wait_s) + _WINDOW_TTL_MARGIN_S)
    except redis.RedisError as exc:
        log.warning("rate_limit_window_unavailable", host=host_of(config), error=str(exc))
        return
    log.info("rate_limit_window_closed", host=host_of(config), wait_s=round(wait_s, 3))
