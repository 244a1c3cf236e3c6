"""Follow the changes websocket, resuming by seq after any disconnect.

`ws://HOST/ws/v1/changes?after=<seq>&source=<id>` sends every change after
`seq` (the backlog), then live ones, one JSON frame each, in seq order. A
follower keeps the last seq it handed out; when the connection drops (a
server restart, a network blip, a close with 1001/1011/1012), it reconnects
with `after=<last seq>` after a backoff, so the caller sees every change
once, in order, across reconnects. Close codes 4400/4401/4404 (the HTTP
status + 4000) and 4410 (below the retention floor) are raised as the
matching `ApiError`: reconnecting could not fix them.

`ChangeFollower` is for plain code (a thread that blocks), `AsyncChangeFollower`
for asyncio; both are iterators of `Change` dicts.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlencode

from websockets.asyncio.client import connect as aconnect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import connect

from beastflow_sdk._core import USER_AGENT
from beastflow_sdk.errors import ApiError, TransportError, websocket_error
from beastflow_sdk.models import Change

# Close codes a reconnect cannot fix: the request itself is wrong or refused.
FATAL_CLOSE_CODES = frozenset({4400, 4401, 4403, 4404, 4410})


@dataclass(frozen=True)
class Backoff:
    """Waits between reconnects: exponential from `initial_s` to `max_s`, full jitter; `attempts` None = forever."""

    initial_s: float = 0.2
    max_s: float = 15.0
    attempts: int | None = None

    def delay(self, failures: int) -> float:
        return random.uniform(self.initial_s / 2, min(self.max_s, self.initial_s * 2 ** max(0, failures - 1)))


def changes_url(base_url: str, *, after: int, source: int | None) -> str:
    scheme, _, rest = base_url.partition("://")
    ws_scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
    query: dict[str, int] = {"after": after}
    if source is not None:
        query["source"] = source
    return f"{ws_scheme}://{rest.rstrip('/')}/ws/v1/changes?{urlencode(query)}"


def _change(frame: str | bytes) -> Change | None:
    item = json.loads(frame)
    if isinstance(item, dict) and isinstance(item.get("seq"), int):
        return cast(Change, item)
    return None  # a frame of another kind: not a change


def _closed_error(exc: ConnectionClosed) -> ApiError | None:
    """The error to raise for a close a reconnect cannot fix; None: reconnect."""
    if exc.rcvd is not None and exc.rcvd.code in FATAL_CLOSE_CODES:
        return websocket_error(exc.rcvd.code, exc.rcvd.reason)
    return None


class _State:
    """The resume position and the reconnect bookkeeping, shared by both followers."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        after: int,
        source: int | None,
        backoff: Backoff,
        idle_timeout_s: float | None,
        on_reconnect: Callable[[int, BaseException], None] | None,
    ) -> None:
        self.base_url = base_url
        self.headers = {"User-Agent": USER_AGENT}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.last_seq = after
        self.source = source
        self.backoff = backoff
        self.idle_timeout_s = idle_timeout_s
        self.on_reconnect = on_reconnect
        self.reconnects = 0
        self.failures = 0  # consecutive failed connections
        self.last_activity = time.monotonic()

    def url(self) -> str:
        return changes_url(self.base_url, after=self.last_seq, source=self.source)

    def take(self, change: Change) -> bool:
        """True when `change` is new (a repeat after a reconnect is dropped)."""
        self.last_activity = time.monotonic()
        if change["seq"] <= self.last_seq:
            return False
        self.last_seq = change["seq"]
        return True

    def idle_left(self) -> float | None:
        if self.idle_timeout_s is None:
            return None
        return self.idle_timeout_s - (time.monotonic() - self.last_activity)

    def connected(self) -> None:
        self.failures = 0

    def lost(self, exc: BaseException) -> float:
        """Bookkeeping for a lost or failed connection; the wait before the next try. Raises when out of tries."""
        if isinstance(exc, ConnectionClosed):
            fatal = _closed_error(exc)
            if fatal is not None:
                raise fatal from exc
        if isinstance(exc, InvalidStatus) and exc.response.status_code in (400, 401, 403, 404):
            raise websocket_error(4000 + exc.response.status_code, str(exc)) from exc
        self.failures += 1
        self.reconnects += 1
        if self.backoff.attempts is not None and self.failures > self.backoff.attempts:
            raise TransportError(f"the changes websocket could not be reconnected: {exc}") from exc
        if self.on_reconnect is not None:
            self.on_reconnect(self.last_seq, exc)
        return self.backoff.delay(self.failures)

    def retry_wait(self, exc: BaseException) -> float | None:
        """After a lost connection: the wait before reconnecting; None when idle would run out first (stop)."""
        wait = self.lost(exc)
        left = self.idle_left()
        if left is not None and left <= wait:
            return None
        return wait


# What a dropped or refused connection raises: reconnect on these.
_RECONNECTABLE = (ConnectionClosed, InvalidHandshake, OSError, TimeoutError)


class _Follower:
    """What both followers keep: the resume position and the reconnect bookkeeping (`_State`)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        after: int = 0,
        source: int | None = None,
        backoff: Backoff | None = None,
        idle_timeout_s: float | None = None,
        on_reconnect: Callable[[int, BaseException], None] | None = None,
        open_timeout_s: float = 10.0,
    ) -> None:
        self._state = _State(
            base_url,
            api_key,
            after=after,
            source=source,
            backoff=backoff or Backoff(),
            idle_timeout_s=idle_timeout_s,
            on_reconnect=on_reconnect,
        )
        self._open_timeout_s = open_timeout_s

    @property
    def last_seq(self) -> int:
        return self._state.last_seq

    @property
    def reconnects(self) -> int:
        return self._state.reconnects


class ChangeFollower(_Follower):
    """Every change after `after`, then live ones, forever (or until idle for `idle_timeout_s`).

    `last_seq` is the seq of the last change handed out: store it (after
    handling the change) to resume after a restart of your process.
    """

    def __iter__(self) -> Iterator[Change]:
        state = self._state
        while True:
            try:
                with connect(
                    state.url(),
                    additional_headers=state.headers,
                    open_timeout=self._open_timeout_s,
                    user_agent_header=None,
                ) as socket:
                    state.connected()
                    while True:
                        left = state.idle_left()
                        if left is not None and left <= 0:
                            return
                        try:
                            frame = socket.recv(timeout=left)
                        except TimeoutError:
                            return  # idle for idle_timeout_s: done
                        change = _change(frame)
                        if change is not None and state.take(change):
                            yield change
            except _RECONNECTABLE as exc:
                wait = state.retry_wait(exc)
                if wait is None:
                    return
                time.sleep(wait)


class AsyncChangeFollower(_Follower):
    """`ChangeFollower` for asyncio: `async for change in follower`."""

    def __aiter__(self) -> AsyncIterator[Change]:
        return self._changes()

    async def _changes(self) -> AsyncIterator[Change]:
        state = self._state
        while True:
            try:
                async with aconnect(
                    state.url(),
                    additional_headers=state.headers,
                    open_timeout=self._open_timeout_s,
                    user_agent_header=None,
                ) as socket:
                    state.connected()
                    while True:
                        left = state.idle_left()
                        if left is not None and left <= 0:
                            return
                        try:
                            frame: Any = await asyncio.wait_for(socket.recv(), left)
                        except TimeoutError:
                            return
                        change = _change(frame)
                        if change is not None and state.take(change):
                            yield change
            except _RECONNECTABLE as exc:
                wait = state.retry_wait(exc)
                if wait is None:
                    return
                await asyncio.sleep(wait)
