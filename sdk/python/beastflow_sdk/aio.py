"""The asyncio client: `AsyncClient(base_url, api_key)`, the same methods as `Client`, awaited.

from beastflow_sdk import AsyncClient, upsert

async with AsyncClient() as bf:  # BEASTFLOW_URL and BEASTFLOW_API_KEY from the environment
    await bf.push(source_id, upsert("order-42", 7, {"total": 12.5}))
    async for change in bf.follow(after=0):
        ...
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

import httpx

from beastflow_sdk import calls, operations
from beastflow_sdk._core import (
    USER_AGENT,
    Call,
    RetryInfo,
    RetryPolicy,
    api_key_from,
    base_url_from,
    chunks,
    dumps,
    mark_partial,
    push_call,
    request_headers,
    retry_info,
)
from beastflow_sdk.errors import BeastFlowError, TransportError, error_from_response
from beastflow_sdk.follow import AsyncChangeFollower, Backoff
from beastflow_sdk.models import Change, Failure, HealingAction, PushResult, RCAResult, Record, Source, Subscription


class AsyncClient(operations.AsyncSender, operations.PushOperations):
    """BeastFlow's API as one tenant, for asyncio (the API key decides which).

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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url_from(base_url)
        self.api_key = api_key_from(api_key)
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )
        self.sources = AsyncSources(self)
        self.presets = AsyncPresets(self)
        self.records = AsyncRecords(self)
        self.changes = AsyncChanges(self)
        self.subscriptions = AsyncSubscriptions(self)
        self.failures = AsyncFailures(self)
        self.rca = AsyncRCA(self)
        self.healing_actions = AsyncHealingActions(self)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- sending -----------------------------------------------------------------

    async def request(self, call: Call) -> Any:
        """Send `call` (retrying as allowed); the decoded JSON answer, None for an empty one."""
        attempt = 0
        while True:
            attempt += 1
            headers = request_headers(call, self.api_key)
            try:
                response = await self._http.request(
                    call.method, call.path, params=call.params, json=call.json, content=call.content, headers=headers
                )
            except httpx.TransportError as exc:
                info = retry_info(call, self.retry, attempt, exc)
                if info is None:
                    raise TransportError(f"{call.method} {call.path}: {exc!r}") from exc
            else:
                if response.status_code < 400:
                    return response.json() if response.content else None
                error = error_from_response(response.status_code, response.headers, response.content)
                info = retry_info(call, self.retry, attempt, error)
                if info is None:
                    raise error
            await self._wait(info)

    async def _send(self, call: Call) -> Any:
        return await self.request(call)

    async def _wait(self, info: RetryInfo) -> None:
        if self.on_retry is not None:
            self.on_retry(info)
        await asyncio.sleep(info.delay_s)

    async def pages(self, make: Callable[[str | None], Call]) -> AsyncIterator[Any]:
        """Every item of a list endpoint, page after page (`make(cursor)` builds each page's call)."""
        cursor: str | None = None
        while True:
            page = await self.request(make(cursor))
            for item in page["results"]:
                yield item
            cursor = page.get("next_cursor")
            if not cursor:
                return

    # -- push --------------------------------------------------------------------

    async def push_batch(
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
                result = await self.request(call)
            except BeastFlowError as exc:
                mark_partial(exc, total, offset)
                raise
            total["accepted"] += result["accepted"]
            total["duplicates"] += result["duplicates"]
            offset += len(batch)
        return total

    # -- follow ------------------------------------------------------------------

    def follow(
        self,
        *,
        after: int = 0,
        source: int | None = None,
        idle_timeout_s: float | None = None,
        backoff: Backoff | None = None,
        on_reconnect: Callable[[int, BaseException], None] | None = None,
    ) -> AsyncChangeFollower:
        """Changes after `after` over the websocket, then live (`async for`); reconnects by seq on its own."""
        return AsyncChangeFollower(
            self.base_url,
            self.api_key,
            after=after,
            source=source,
            idle_timeout_s=idle_timeout_s,
            backoff=backoff,
            on_reconnect=on_reconnect,
        )


class _Part(operations.AsyncSender):
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def _send(self, call: Call) -> Any:
        return await self._client.request(call)


class AsyncSources(_Part, operations.SourcesOperations):
    def iter(self) -> AsyncIterator[Source]:
        return self._client.pages(lambda cursor: calls.sources_list(limit=500, cursor=cursor))


class AsyncPresets(_Part, operations.PresetsOperations):
    pass


class AsyncRecords(_Part, operations.RecordsOperations):
    def iter(self, source_id: int) -> AsyncIterator[Record]:
        """Every live record of the source, page after page."""
        return self._client.pages(lambda cursor: calls.records_list(source_id, limit=500, cursor=cursor))


class AsyncChanges(_Part, operations.ChangesOperations):
    async def iter(
        self,
        *,
        after: int = 0,
        source: int | None = None,
        page_size: int = 500,
        follow: bool = False,
        poll_interval_s: float = 1.0,
    ) -> AsyncIterator[Change]:
        """Every change after `after`, oldest first, paging by `next_after`.

        Ends once caught up, unless `follow`: then it keeps asking every
        `poll_interval_s` (the websocket, `AsyncClient.follow`, is the live way).
        """
        while True:
            page = await self.list(after=after, source=source, limit=page_size)
            for change in page["results"]:
                yield change
            after = page["next_after"]
            if len(page["results"]) < page_size:
                if not follow:
                    return
                await asyncio.sleep(poll_interval_s)


class AsyncSubscriptions(_Part, operations.SubscriptionsOperations):
    def iter(self) -> AsyncIterator[Subscription]:
        return self._client.pages(lambda cursor: calls.subscriptions_list(limit=500, cursor=cursor))


class AsyncFailures(_Part, operations.FailuresOperations):
    def iter(self, *, source: int | None = None, status: str | None = None) -> AsyncIterator[Failure]:
        return self._client.pages(lambda c: calls.failures_list(source=source, status=status, limit=500, cursor=c))


class AsyncRCA(_Part, operations.RCAOperations):
    def iter(self, *, source: int | None = None, status: str | None = None) -> AsyncIterator[RCAResult]:
        return self._client.pages(lambda c: calls.rca_list(source=source, status=status, limit=500, cursor=c))


class AsyncHealingActions(_Part, operations.HealingActionsOperations):
    def iter(self, *, source: int | None = None, status: str | None = None) -> AsyncIterator[HealingAction]:
        return self._client.pages(
            lambda c: calls.healing_actions_list(source=source, status=status, limit=500, cursor=c)
        )
