"""Queueing the engines' per-source tasks (a poll, a reconciliation run) from inside the engines.

engines.tasks imports the dispatcher, the monitor and the reconciliation,
which queue these tasks in turn; so engines.tasks registers its two tasks
here when it is imported (EnginesConfig.ready() imports it in every process)
and the engines send them through this module, with no import cycle.
"""

from __future__ import annotations

from typing import Any, Protocol


class Sendable(Protocol):
    """What the engines use of a Celery task."""

    def delay(self, *args: Any, **kwargs: Any) -> Any: ...

    def apply_async(self, *args: Any, **kwargs: Any) -> Any: ...


_tasks: dict[str, Sendable] = {}


def tasks_register(*, poll: Sendable, reconcile: Sendable) -> None:
    _tasks.update(poll=poll, reconcile=reconcile)


def _task(name: str) -> Sendable:
    task = _tasks.get(name)
    if task is None:
        raise RuntimeError("engines.tasks was not imported: no task to send")
    return task


def poll_task() -> Sendable:
    """engines.tasks.source_poll_task(source_id, trigger)."""
    return _task("poll")


def reconcile_task() -> Sendable:
    """engines.tasks.source_reconcile_task(run_id)."""
    return _task("reconcile")
