"""The synchronous client: `Client(base_url, api_key)`, one method per API operation.

from beastflow_sdk import Client, upsert

with Client() as bf:  # BEASTFLOW_URL and BEASTFLOW_API_KEY from the environment
    source = bf.sources.create({"name": "orders", "connector": "http", "config": {...}})
    bf.push(source["id"], upsert("order-42", 7, {"total": 12.5}))
    for change in bf.follow(after=0):
        ...
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, cast

import httpx

from beastflow_sdk import calls
from beastflow_sdk._core import (
    RETRY_STATUSES,
    USER_AGENT,
    Call,
    RetryInfo,
    RetryPolicy,
    api_key_from,
    base_url_from,
    chunks,
    dumps,
    ndjson,
    push_call,
    shift_indexes,
    with_id,
)
from beastflow_sdk.errors import ApiError, BeastFlowError, TransportError, error_from_response
from beastflow_sdk.follow import Backoff, ChangeFollower
from beastflow_sdk.models import (
    Change,
    ChangesPage,
    Delivery,
    Failure,
    HealingAction,
    ModeSwitch,
    Page,
    Preset,
    PushResult,
    RCAResult,
    ReconcileRequest,
    ReconciliationRun,
    Record,
    Source,
    SourceHealth,
    Subscription,
)

T = TypeVar("T")


class Client:
    """BeastFlow's API as one tenant (the API key decides which).

    `base_url` defaults to `BEASTFLOW_URL` (else http://localhost:8000),
    `api_key` to `BEASTFLOW_API_KEY`. Reads, deletes and pushes are retried
    on 429/502/503/504 and broken connections as `retry` allows, obeying
    `Retry-After`; creates and decisions are sent once. `on_retry` is called
    before each wait (log it, count it).
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        on_retry: Callable[[RetryInfo], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url_from(base_url)
        self.api_key = api_key_from(api_key)
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )
        self.sources = Sources(self)
        self.presets = Presets(self)
        self.records = Records(self)
        self.changes = Changes(self)
        self.subscriptions = Subscriptions(self)
        self.failures = Failures(self)
        self.rca = RCA(self)
        self.healing_actions = HealingActions(self)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sending -----------------------------------------------------------------

    def request(self, call: Call) -> Any:
        """Send `call` (retrying as allowed); the decoded JSON answer, None for an empty one."""
        attempt = 0
        while True:
            attempt += 1
            headers = dict(call.headers)
            if self.api_key and not call.anonymous:
                headers["Authorization"] = f"Bearer {self.api_key}"
            try:
                response = self._http.request(
                    call.method, call.path, params=call.params, json=call.json, content=call.content, headers=headers
                )
            except httpx.TransportError as exc:
                delay = self.retry.delay(attempt, None) if call.retry else None
                if delay is None:
                    raise TransportError(f"{call.method} {call.path}: {exc!r}") from exc
                self._wait(RetryInfo(call.method, call.path, attempt, delay, None, repr(exc)))
                continue
            if response.status_code < 400:
                return response.json() if response.content else None
            error = error_from_response(response.status_code, response.headers, response.content)
            delay = None
            if call.retry and response.status_code in RETRY_STATUSES:
                delay = self.retry.delay(attempt, error.retry_after)
            if delay is None:
                raise error
            self._wait(RetryInfo(call.method, call.path, attempt, delay, response.status_code, error.detail))

    def _wait(self, info: RetryInfo) -> None:
        if self.on_retry is not None:
            self.on_retry(info)
        time.sleep(info.delay_s)

    def pages(self, make: Callable[[str | None], Call]) -> Iterator[Any]:
        """Every item of a list endpoint, page after page (`make(cursor)` builds each page's call)."""
        cursor: str | None = None
        while True:
            page = self.request(make(cursor))
            yield from page["results"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    # -- push --------------------------------------------------------------------

    def push(self, source_id: int, event: Mapping[str, Any], *, webhook_secret: str | None = None) -> PushResult:
        """Push one event; 202 only once it is committed. An event without `id` gets one that retries reuse.

        With `webhook_secret` the request is signed (`X-BeastFlow-Signature`) instead of using the API key.
        """
        body = dumps(with_id(event))
        result: PushResult = self.request(push_call(source_id, body, webhook_secret=webhook_secret))
        return result

    def push_batch(
        self,
        source_id: int,
        events: Iterable[Mapping[str, Any]],
        *,
        batch_size: int = 1000,
        webhook_secret: str | None = None,
    ) -> PushResult:
        """Push events as `{"events": [...]}` requests of up to `batch_size`; the answers summed.

        Each request is all or nothing. When one fails, the exception's
        `committed` says what the requests before it committed, and a 422's
        `errors[].index` counts from the first event given here.
        """
        total: PushResult = {"accepted": 0, "duplicates": 0}
        offset = 0
        for batch in chunks(events, batch_size):
            call = push_call(source_id, dumps({"events": batch}), webhook_secret=webhook_secret)
            try:
                result = self.request(call)
            except BeastFlowError as exc:
                _mark_partial(exc, total, offset)
                raise
            total["accepted"] += result["accepted"]
            total["duplicates"] += result["duplicates"]
            offset += len(batch)
        return total

    def push_ndjson(
        self, source_id: int, events: Iterable[Mapping[str, Any]] | bytes, *, webhook_secret: str | None = None
    ) -> PushResult:
        """Push one NDJSON body (`application/x-ndjson`): events (ids filled in) or bytes sent as they are."""
        body = events if isinstance(events, bytes) else ndjson(events)
        call = push_call(source_id, body, content_type="application/x-ndjson", webhook_secret=webhook_secret)
        result: PushResult = self.request(call)
        return result

    # -- follow ------------------------------------------------------------------

    def follow(
        self,
        *,
        after: int = 0,
        source: int | None = None,
        idle_timeout_s: float | None = None,
        backoff: Backoff | None = None,
        on_reconnect: Callable[[int, BaseException], None] | None = None,
    ) -> ChangeFollower:
        """Changes after `after` over the websocket, then live; reconnects by seq on its own."""
        return ChangeFollower(
            self.base_url,
            self.api_key,
            after=after,
            source=source,
            idle_timeout_s=idle_timeout_s,
            backoff=backoff,
            on_reconnect=on_reconnect,
        )


def _mark_partial(exc: BeastFlowError, total: PushResult, offset: int) -> None:
    exc.committed = {"accepted": total["accepted"], "duplicates": total["duplicates"]}
    if isinstance(exc, ApiError) and offset:
        exc.errors = shift_indexes(exc.errors, offset)


class _Part:
    def __init__(self, client: Client) -> None:
        self._client = client

    def _send(self, call: Call) -> Any:
        return self._client.request(call)


class Sources(_Part):
    def list(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Source]:
        return cast("Page[Source]", self._send(calls.sources_list(limit=limit, cursor=cursor)))

    def iter(self) -> Iterator[Source]:
        return self._client.pages(lambda cursor: calls.sources_list(limit=500, cursor=cursor))

    def create(self, body: Mapping[str, Any]) -> Source:
        """Register a source (a whole definition, or `{"name", "preset", "config", "push"...}`).

        The answer's `webhook_secret` is shown this once.
        """
        return cast("Source", self._send(calls.source_create(body)))

    def get(self, source_id: int) -> Source:
        return cast("Source", self._send(calls.source_get(source_id)))

    def update(self, source_id: int, changes: Mapping[str, Any]) -> Source:
        """PATCH: the given top-level fields replace the stored ones."""
        return cast("Source", self._send(calls.source_update(source_id, changes)))

    def delete(self, source_id: int) -> None:
        self._send(calls.source_delete(source_id))

    def health(self, source_id: int) -> SourceHealth:
        return cast("SourceHealth", self._send(calls.source_health(source_id)))

    def mode_switches(self, source_id: int, *, limit: int | None = None, cursor: str | None = None) -> Page[ModeSwitch]:
        return cast("Page[ModeSwitch]", self._send(calls.source_mode_switches(source_id, limit=limit, cursor=cursor)))

    def polls(self, source_id: int, *, limit: int | None = None, cursor: str | None = None) -> Page[dict[str, Any]]:
        return cast("Page[dict[str, Any]]", self._send(calls.source_polls(source_id, limit=limit, cursor=cursor)))

    def poll(self, source_id: int) -> dict[str, Any]:
        """Poll the upstream now (202: a worker runs it)."""
        return cast("dict[str, Any]", self._send(calls.source_poll(source_id)))

    def reconcile(self, source_id: int) -> ReconcileRequest:
        """Reconcile now (202 with the run, or the run already under way)."""
        return cast("ReconcileRequest", self._send(calls.source_reconcile(source_id)))

    def reconciliations(
        self, source_id: int, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[ReconciliationRun]:
        return cast(
            "Page[ReconciliationRun]", self._send(calls.source_reconciliations(source_id, limit=limit, cursor=cursor))
        )

    def preview_mapping(self, source_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        """What the source's push mapping (or one given in `body`) makes of a sample request; stores nothing."""
        return cast("dict[str, Any]", self._send(calls.mapping_preview(source_id, body)))


class Presets(_Part):
    def list(self) -> Page[Preset]:
        return cast("Page[Preset]", self._send(calls.presets_list()))

    def get(self, name: str) -> Preset:
        """One preset, with `fills` and `example`."""
        return cast("Preset", self._send(calls.preset_get(name)))


class Records(_Part):
    def list(self, source_id: int, *, limit: int | None = None, cursor: str | None = None) -> Page[Record]:
        return cast("Page[Record]", self._send(calls.records_list(source_id, limit=limit, cursor=cursor)))

    def iter(self, source_id: int) -> Iterator[Record]:
        """Every live record of the source, page after page."""
        return self._client.pages(lambda cursor: calls.records_list(source_id, limit=500, cursor=cursor))

    def get(self, source_id: int, key: str) -> Record:
        """One record (NotFoundError when absent or deleted)."""
        return cast("Record", self._send(calls.record_get(source_id, key)))


class Changes(_Part):
    def list(self, *, after: int = 0, source: int | None = None, limit: int | None = None) -> ChangesPage:
        return cast("ChangesPage", self._send(calls.changes_list(after=after, source=source, limit=limit)))

    def iter(
        self,
        *,
        after: int = 0,
        source: int | None = None,
        page_size: int = 500,
        follow: bool = False,
        poll_interval_s: float = 1.0,
    ) -> Iterator[Change]:
        """Every change after `after`, oldest first, paging by `next_after`.

        Ends once caught up, unless `follow`: then it keeps asking every
        `poll_interval_s` (the websocket, `Client.follow`, is the live way).
        """
        while True:
            page = self.list(after=after, source=source, limit=page_size)
            yield from page["results"]
            after = page["next_after"]
            if len(page["results"]) < page_size:
                if not follow:
                    return
                time.sleep(poll_interval_s)


class Subscriptions(_Part):
    def list(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Subscription]:
        return cast("Page[Subscription]", self._send(calls.subscriptions_list(limit=limit, cursor=cursor)))

    def iter(self) -> Iterator[Subscription]:
        return self._client.pages(lambda cursor: calls.subscriptions_list(limit=500, cursor=cursor))

    def create(
        self,
        url: str,
        *,
        sources: Sequence[int] | None = None,
        from_seq: int | None = None,
        signature: str | None = None,
    ) -> Subscription:
        """Subscribe `url` to changes (`signature`: "beastflow" or "standard-webhooks"); `secret` is shown once."""
        call = calls.subscription_create(url, sources=sources, from_seq=from_seq, signature=signature)
        return cast("Subscription", self._send(call))

    def get(self, subscription_id: int) -> Subscription:
        return cast("Subscription", self._send(calls.subscription_get(subscription_id)))

    def delete(self, subscription_id: int) -> None:
        self._send(calls.subscription_delete(subscription_id))

    def deliveries(
        self, subscription_id: int, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Delivery]:
        return cast(
            "Page[Delivery]", self._send(calls.subscription_deliveries(subscription_id, limit=limit, cursor=cursor))
        )

    def replay(self, subscription_id: int, *, from_seq: int) -> Subscription:
        return cast("Subscription", self._send(calls.subscription_replay(subscription_id, from_seq=from_seq)))

    def enable(self, subscription_id: int) -> Subscription:
        return cast("Subscription", self._send(calls.subscription_enable(subscription_id)))


class Failures(_Part):
    def list(
        self,
        *,
        source: int | None = None,
        status: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Failure]:
        return cast(
            "Page[Failure]", self._send(calls.failures_list(source=source, status=status, limit=limit, cursor=cursor))
        )

    def iter(self, *, source: int | None = None, status: str | None = None) -> Iterator[Failure]:
        return self._client.pages(lambda c: calls.failures_list(source=source, status=status, limit=500, cursor=c))

    def get(self, failure_id: int) -> Failure:
        return cast("Failure", self._send(calls.failure_get(failure_id)))


class RCA(_Part):
    def list(
        self,
        *,
        source: int | None = None,
        status: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[RCAResult]:
        return cast(
            "Page[RCAResult]", self._send(calls.rca_list(source=source, status=status, limit=limit, cursor=cursor))
        )

    def iter(self, *, source: int | None = None, status: str | None = None) -> Iterator[RCAResult]:
        return self._client.pages(lambda c: calls.rca_list(source=source, status=status, limit=500, cursor=c))

    def get(self, rca_id: int) -> RCAResult:
        """One result, with its `timeline`."""
        return cast("RCAResult", self._send(calls.rca_get(rca_id)))

    def confirm(self, rca_id: int, *, category: str | None = None, note: str = "") -> RCAResult:
        """Confirm the result (no `category`), or correct it to `category`."""
        return cast("RCAResult", self._send(calls.rca_confirm(rca_id, category=category, note=note)))


class HealingActions(_Part):
    def list(
        self,
        *,
        source: int | None = None,
        status: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[HealingAction]:
        call = calls.healing_actions_list(source=source, status=status, limit=limit, cursor=cursor)
        return cast("Page[HealingAction]", self._send(call))

    def iter(self, *, source: int | None = None, status: str | None = None) -> Iterator[HealingAction]:
        return self._client.pages(
            lambda c: calls.healing_actions_list(source=source, status=status, limit=500, cursor=c)
        )

    def get(self, action_id: int) -> HealingAction:
        """One action, with its audit trail (`events`)."""
        return cast("HealingAction", self._send(calls.healing_action_get(action_id)))

    def approve(self, action_id: int, *, reason: str = "") -> HealingAction:
        """Approve an action awaiting approval: it starts now (ConflictError when it is not waiting)."""
        return cast("HealingAction", self._send(calls.healing_action_approve(action_id, reason=reason)))

    def reject(self, action_id: int, *, reason: str) -> HealingAction:
        """Reject an action awaiting approval: nothing runs; the reason is kept."""
        return cast("HealingAction", self._send(calls.healing_action_reject(action_id, reason=reason)))
