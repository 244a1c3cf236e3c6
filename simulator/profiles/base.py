"""What a simulator profile is: the shape of one upstream's API and webhooks over the shared truth.

A profile (simulator/profiles/<name>.py) decides three things and
nothing else:

- which HTTP routes the simulated upstream serves and what they answer when
  the faults let a request through (`route`, `serve`), and how it says no
  (`failure`, `error`): the body shapes, status codes and headers of the real API;
- how a request proves who it is (`authorized`);
- how the change log becomes webhook requests (`wire`): their bodies,
  headers and signatures, and keep-alives (heartbeats, pings).

The dataset, the faults, the traffic and the scenario belong to the
`Simulator`; every profile renders the same truth, so all faults apply to
all of them. Pure: no sockets here (the server and the pusher do the I/O).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from simulator.dataset import ChangeMeta, Event
from simulator.faults import Breaker, RequestPlan

if TYPE_CHECKING:
    from simulator.state import Simulator

Item = dict[str, Any]  # one thing to push: a docs/contract.md §4 event, or a native webhook's parts


class ApiError(Exception):
    """A request the upstream refuses (bad parameter, unknown route); rendered by the profile."""

    def __init__(self, status: int, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: list[tuple[str, str]]  # in order, blank values kept (`created[gte]` stays one name)
    headers: Mapping[str, str]  # lower-cased names
    base_url: str  # scheme://host[:port] as the client addressed us (for Link headers)

    def param(self, name: str) -> str | None:
        for key, value in self.query:
            if key == name:
                return value
        return None

    def params(self, name: str) -> list[str]:
        return [value for key, value in self.query if key == name]


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"
    # Counted instead of the fault plan's "ok" (e.g. "not_modified", "over_limit").
    outcome: str | None = None


class Wire(Protocol):
    """How a profile's webhooks look on the wire (used by simulator.pusher)."""

    batched: bool  # many events a request (docs/contract.md §4), or one request each (native webhooks)
    breaks: Sequence[Breaker]  # schema breaks of a rendered item

    def render(self, event: Event, meta: ChangeMeta) -> Item | None:
        """The item to push for one change-log entry (None: nothing to push)."""

    def keepalive(self, now: float) -> Item | None:
        """A heartbeat or ping due at `now`, if any."""

    def encode(self, items: list[Item]) -> tuple[dict[str, str], bytes]:
        """Headers and body of one request carrying `items` (one item unless `batched`)."""

    def is_record(self, item: Item) -> bool:
        """Whether the item carries a change (counted in `events_sent`), not a keep-alive."""


class Profile(ABC):
    """One upstream's shape over a Simulator. Subclasses register in profiles/__init__.py."""

    name: ClassVar[str]

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    @abstractmethod
    def route(self, method: str, path: str) -> str | None:
        """The endpoint name (used in request counters) of an upstream route; None: not ours.

        Raises ApiError(405) for a known path and the wrong method.
        """

    @abstractmethod
    def authorized(self, request: Request) -> bool: ...

    @abstractmethod
    def serve(self, endpoint: str, request: Request) -> Response:
        """The answer when the faults let the request through. Raises ApiError."""

    @abstractmethod
    def error(self, status: int, detail: str, field: str | None = None) -> Response:
        """An error in this upstream's own body shape."""

    def failure(self, plan: RequestPlan) -> Response:
        """The answer of a faulted request (outage, 401, timeout, 429, 5xx)."""
        detail = {
            "outage": "upstream unavailable (simulated outage)",
            "reset": "upstream unavailable (simulated outage)",
            "unauthorized": "missing or invalid credentials",
            "timeout": "upstream timed out (simulated)",
            "rate_limited": "rate limited (simulated)",
            "server_error": "upstream error (simulated)",
        }[plan.outcome]
        response = self.error(plan.status, detail)
        if plan.retry_after_s is not None:
            response.headers.append(("retry-after", str(plan.retry_after_s)))
        return response

    @abstractmethod
    def wire(self, secret: str | None, *, heartbeat_s: float) -> Wire: ...

    def upstream_key(self, key: str) -> str:
        """The key a receiver stores for dataset key `key` (the issue id, the customer id...)."""
        return key

    def settings(self) -> dict[str, Any]:
        """What `GET /_control/profile` shows."""
        return {"name": self.name}

    def configure(self, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Apply `POST /_control/profile`. Raises ValueError naming the field."""
        if patch:
            raise ValueError(f"profile {self.name} has no runtime settings: {sorted(patch)}")
        return self.settings()

    def reset(self) -> None:  # noqa: B027  (most profiles keep no per-run state)
        """Forget per-run state (rate-limit windows), as `POST /_control/reset` does."""


def key_index(key: str) -> int:
    """The number in a generated key ("rec-000042" -> 42); other keys get a stable one from their hash."""
    number = key.removeprefix("rec-")
    if number != key and number.isdigit():
        return int(number)
    return 1_000_000 + int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 1_000_000_000


def etag_of(body: bytes) -> str:
    return 'W/"' + hashlib.sha256(body).hexdigest()[:40] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison against an If-None-Match list (or `*`)."""
    if not if_none_match:
        return False
    wanted = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False
