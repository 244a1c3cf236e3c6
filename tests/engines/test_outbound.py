"""The engines' outbound port: announcements reach the rooms that subscribed, in order, synchronously."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from engines import outbound, sending


@dataclass(frozen=True)
class _Happened:
    what: str


def test_an_announcement_reaches_each_subscriber_once_in_the_order_they_subscribed() -> None:
    # given
    heard: list[str] = []

    def first(event: _Happened) -> None:
        heard.append(f"first:{event.what}")

    def second(event: _Happened) -> None:
        heard.append(f"second:{event.what}")

    outbound.subscribe(_Happened, first)
    outbound.subscribe(_Happened, second)
    outbound.subscribe(_Happened, first)  # a second ready() does not double it
    # when
    outbound.announce(_Happened("switched"))
    # then
    assert heard == ["first:switched", "second:switched"]


def test_a_subscriber_error_reaches_the_announcing_engine() -> None:
    @dataclass(frozen=True)
    class Failing:
        pass

    def refuse(event: Failing) -> None:
        raise ValueError("refused")

    outbound.subscribe(Failing, refuse)
    with pytest.raises(ValueError, match="refused"):
        outbound.announce(Failing())


def test_an_event_nobody_subscribed_to_is_dropped_quietly() -> None:
    @dataclass(frozen=True)
    class Unheard:
        pass

    outbound.announce(Unheard())  # no error, nothing to assert but that it returns


def test_every_event_the_engines_announce_is_heard_once_the_apps_are_ready() -> None:
    # given: the event classes engines/outbound.py declares
    events = [
        value
        for value in vars(outbound).values()
        if isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == outbound.__name__
    ]
    announced = [event for event in events if event not in (outbound.ApprovalAnswer, outbound.Decision)]
    # then: healing, console and callbacks subscribed in their AppConfig.ready()
    assert len(announced) == 9
    assert [event.__name__ for event in announced if not outbound._subscribers.get(event)] == ["ApprovalNeeded"]
    assert outbound._approvers  # ApprovalNeeded is answered by healing, not merely heard
    assert sorted(outbound.strategy_handlers) == ["full_reconcile"]
    assert sending.poll_task().name == "engines.tasks.source_poll_task"
    assert sending.reconcile_task().name == "engines.tasks.source_reconcile_task"
