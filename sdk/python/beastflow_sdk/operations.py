"""Each API operation written once, as a method of both clients.

An `Operation` pairs a builder of `calls.py` (the request) with the type of
its answer. Read from a `Client` (or one of its parts) it is a method that
sends the call and returns the answer; read from an `AsyncClient`, the same
method awaited. The method takes the builder's parameters and carries its
docstring, so a signature or a doc is written in one place for both clients.

The tables below list the operations of each part of the API; `client.py`
and `aio.py` add what has a loop of its own (`iter`, batches, the websocket).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, Generic, ParamSpec, TypeVar, overload

from beastflow_sdk import calls
from beastflow_sdk._core import Call
from beastflow_sdk.models import (
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

P = ParamSpec("P")
T = TypeVar("T")
NO_CONTENT = type(None)  # the answer of an operation answering 204


class Sender:
    """A `Client` or one of its parts: sends a call, returns the decoded answer."""

    def _send(self, call: Call) -> Any:
        raise NotImplementedError


class AsyncSender:
    """An `AsyncClient` or one of its parts: sends a call, returns the decoded answer, awaited."""

    async def _send(self, call: Call) -> Any:
        raise NotImplementedError


class Operation(Generic[P, T]):
    """A method of both clients: `build(*args)` sent, its answer typed `answer`.

    `answer` is only read by the type checker (the JSON is returned as it
    came): the answer's TypedDict, whose constructor returns that type by
    its name; `type(None)` for an operation answering 204.
    """

    def __init__(self, build: Callable[P, Call], answer: Callable[..., T]) -> None:
        self.build = build
        self.name = build.__name__
        # What help() and inspect show: the builder's parameters, the answer's type.
        self.signature = inspect.signature(build).replace(return_annotation=None if answer is NO_CONTENT else answer)

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, sender: None, owner: type[Any] | None = None) -> Operation[P, T]: ...

    @overload
    def __get__(self, sender: Sender, owner: type[Any] | None = None) -> Callable[P, T]: ...

    @overload
    def __get__(self, sender: AsyncSender, owner: type[Any] | None = None) -> Callable[P, Coroutine[Any, Any, T]]: ...

    def __get__(self, sender: Sender | AsyncSender | None, owner: type[Any] | None = None) -> Any:
        if sender is None:
            return self
        method = _awaited(sender, self.build) if isinstance(sender, AsyncSender) else _sent(sender, self.build)
        functools.update_wrapper(method, self.build)
        method.__name__ = self.name
        method.__qualname__ = f"{type(sender).__name__}.{self.name}"
        method.__signature__ = self.signature  # type: ignore[attr-defined]
        return method


def _sent(sender: Sender, build: Callable[..., Call]) -> Callable[..., Any]:
    def method(*args: Any, **kwargs: Any) -> Any:
        return sender._send(build(*args, **kwargs))

    return method


def _awaited(sender: AsyncSender, build: Callable[..., Call]) -> Callable[..., Any]:
    async def method(*args: Any, **kwargs: Any) -> Any:
        return await sender._send(build(*args, **kwargs))

    return method


# -- the tables --------------------------------------------------------------------


class PushOperations:
    push = Operation(calls.push, PushResult)
    push_ndjson = Operation(calls.push_ndjson, PushResult)


class SourcesOperations:
    list = Operation(calls.sources_list, Page[Source])
    create = Operation(calls.source_create, Source)
    get = Operation(calls.source_get, Source)
    update = Operation(calls.source_update, Source)
    delete = Operation(calls.source_delete, NO_CONTENT)
    health = Operation(calls.source_health, SourceHealth)
    mode_switches = Operation(calls.source_mode_switches, Page[ModeSwitch])
    polls = Operation(calls.source_polls, Page[dict[str, Any]])
    poll = Operation(calls.source_poll, dict[str, Any])
    reconcile = Operation(calls.source_reconcile, ReconcileRequest)
    reconciliations = Operation(calls.source_reconciliations, Page[ReconciliationRun])
    preview_mapping = Operation(calls.mapping_preview, dict[str, Any])


class PresetsOperations:
    list = Operation(calls.presets_list, Page[Preset])
    get = Operation(calls.preset_get, Preset)


class RecordsOperations:
    list = Operation(calls.records_list, Page[Record])
    get = Operation(calls.record_get, Record)


class ChangesOperations:
    list = Operation(calls.changes_list, ChangesPage)


class SubscriptionsOperations:
    list = Operation(calls.subscriptions_list, Page[Subscription])
    create = Operation(calls.subscription_create, Subscription)
    get = Operation(calls.subscription_get, Subscription)
    delete = Operation(calls.subscription_delete, NO_CONTENT)
    deliveries = Operation(calls.subscription_deliveries, Page[Delivery])
    replay = Operation(calls.subscription_replay, Subscription)
    enable = Operation(calls.subscription_enable, Subscription)


class FailuresOperations:
    list = Operation(calls.failures_list, Page[Failure])
    get = Operation(calls.failure_get, Failure)


class RCAOperations:
    list = Operation(calls.rca_list, Page[RCAResult])
    get = Operation(calls.rca_get, RCAResult)
    confirm = Operation(calls.rca_confirm, RCAResult)


class HealingActionsOperations:
    list = Operation(calls.healing_actions_list, Page[HealingAction])
    get = Operation(calls.healing_action_get, HealingAction)
    approve = Operation(calls.healing_action_approve, HealingAction)
    reject = Operation(calls.healing_action_reject, HealingAction)
