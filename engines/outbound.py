"""What the engines announce to the rooms above them, without knowing them.

The engines are the lowest product room: healing, callbacks and the console
build on them. When an engine needs those rooms to act (a failure to record, a
console to refresh, deliveries to wake, an operator to ask), it announces a
typed event here; each room subscribes in its AppConfig.ready(), which every
process runs (web, workers and beat through django.setup(), commands, tests).

Delivery is synchronous, in the announcer's thread and transaction, so a
subscriber behaves exactly as the direct call it replaces: it runs inside the
caller's transaction, its exception reaches the caller, and an announcement
meant for after the commit is wrapped in transaction.on_commit by the engine.
The cost is a dict lookup and a loop (docs/architecture.md measures it).

Strategies that need an engine to carry out an operator's decision register
their handler here too (`strategy_handler`), and healing looks them up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

E = TypeVar("E")

_subscribers: dict[type, list[Callable[[Any], object]]] = {}


def subscribe(event: type[E], handler: Callable[[E], object]) -> None:
    """Call `handler` with every `event` announced from now on; subscribing twice is one subscription."""
    handlers = _subscribers.setdefault(event, [])
    if handler not in handlers:
        handlers.append(handler)


def announce(event: object) -> None:
    """Tell every subscriber, in the order they subscribed; no subscriber, nothing happens."""
    for handler in _subscribers.get(type(event), ()):
        handler(event)


# -- failures (healing records, analyses and heals them) ---------------------------


@dataclass(frozen=True, slots=True)
class FailureObserved:
    """Something failed for a source (or for the tenant when source_id is None)."""

    kind: str
    source_id: int | None
    identity: dict[str, Any] | None = None
    detail: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class FailureCleared:
    """A failure of this kind is over (a successful poll, a clean reconciliation)."""

    source_id: int | None
    kind: str
    identity: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class StreamDegraded:
    """The monitor switched a source down: silence, gaps or refused pushes."""

    source_id: int
    health: dict[str, Any]
    signals: dict[str, Any]
    reason: str


@dataclass(frozen=True, slots=True)
class StreamGapFound:
    """The monitor found a gap in a source's seqs and asked for a gap-fill poll."""

    source_id: int
    after_seq: int
    missing: int
    signals: dict[str, Any]


# -- operator approvals (healing asks a person) -------------------------------------


@dataclass(frozen=True, slots=True)
class ApprovalNeeded:
    """An engine holds something risky for an operator (a reconciliation past its safety cap)."""

    source_id: int
    strategy: str
    risk: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ApprovalAnswer:
    action_id: int
    created: bool  # False: an action already waited and took the newer detail


@dataclass(frozen=True, slots=True)
class ApprovalProgress:
    """What became of an approved action: `status` is running, succeeded or failed."""

    action_id: int
    status: str
    outcome: dict[str, Any] | None = None


_approvers: list[Callable[[ApprovalNeeded], ApprovalAnswer]] = []


def approver(handler: Callable[[ApprovalNeeded], ApprovalAnswer]) -> None:
    """Register the one room that asks operators (healing); a later registration replaces it."""
    _approvers[:] = [handler]


def approval_request(event: ApprovalNeeded) -> ApprovalAnswer:
    """Ask an operator; the answer says which action waits for them."""
    if not _approvers:
        raise LookupError("no approver registered (is healing in INSTALLED_APPS?)")
    return _approvers[0](event)


@dataclass(frozen=True, slots=True)
class Decision:
    """An operator's decision on an action whose strategy an engine carries out."""

    action_id: int
    source_id: int | None
    detail: Mapping[str, Any]
    decided_by: str
    reason: str


class DecisionRefusedError(Exception):
    """The engine cannot carry out the decision now; the decision is undone (status: HTTP-like)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class StrategyHandler(Protocol):
    def approved(self, decision: Decision) -> None: ...

    def rejected(self, decision: Decision) -> None: ...


strategy_handlers: dict[str, StrategyHandler] = {}


def strategy_handler(strategy: str, handler: StrategyHandler) -> None:
    """`strategy` is carried out by `handler` when an operator approves or rejects it."""
    strategy_handlers[strategy] = handler


# -- what the consoles and the callbacks hear ---------------------------------------


@dataclass(frozen=True, slots=True)
class ModeSwitched:
    """A source changed mode (announced after the switch's commit)."""

    schema: str
    source_id: int


@dataclass(frozen=True, slots=True)
class SourcesJudged:
    """A monitor batch judged these sources, per tenant schema (rates: delivery rate per source)."""

    by_schema: Mapping[str, Sequence[int]]
    rates: Mapping[int, float | None] | None = None


@dataclass(frozen=True, slots=True)
class ChangesCommitted:
    """Changes were committed in this schema: whoever delivers them may look now."""

    schema: str
