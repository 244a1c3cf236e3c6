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
from collections.abc import Callable, Iterable, Iterator, Mapping
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
from beastflow_sdk.follow import Backoff, ChangeFollower
from beastflow_sdk.models import Change, Failure, HealingAction, PushResult, RCAResult, Record, Source, Subscription


class Client(operations.Sender, operations.PushOperations):
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
            headers = request_headers(call, self.api_key)
            try:
                response = self._http.request(
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
            self._wait(info)

    def _send(self, call: Call) -> Any:
        return self.request(call)

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


class _Part(operations.Sender):
    def __init__(self, client: Client) -> None:
        self._client = client

    def _send(self, call: Call) -> Any:
        return self._client.request(call)


class Sources(_Part, operations.SourcesOperations):
    def iter(self) -> Iterator[Source]:
        return self._client.pages(lambda cursor: calls.sources_list(limit=500, cursor=cursor))


class Presets(_Part, operations.PresetsOperations):
    pass


class Records(_Part, operations.RecordsOperations):
    def iter(self, source_id: int) -> Iterator[Record]:
        """Every live record of the source, page after page."""
        return self._client.pages(lambda cursor: calls.records_list(source_id, limit=500, cursor=cursor))


class Changes(_Part, operations.ChangesOperations):
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


class Subscriptions(_Part, operations.SubscriptionsOperations):
    def iter(self) -> Iterator[Subscription]:
        return self._client.pages(lambda cursor: calls.subscriptions_list(limit=500, cursor=cursor))


class Failures(_Part, operations.FailuresOperations):
    def iter(self, *, source: int | None = None, status: str | None = None) -> Iterator[Failure]:
        return self._client.pages(lambda c: calls.failures_list(source=source, status=status, limit=500, cursor=c))


class RCA(_Part, operations.RCAOperations):
    def iter(self, *, source: int | None = None, status: str | None = None) -> Iterator[RCAResult]:
        return self._client.pages(lambda c: calls.rca_list(source=source, status=status, limit=500, cursor=c))


class HealingActions(_Part, operations.HealingActionsOperations):
    def iter(self, *, source: int | None = None, status: str | None = None) -> Iterator[HealingAction]:
        return self._client.pages(
            lambda c: calls.healing_actions_list(source=source, status=status, limit=500, cursor=c)
        )
