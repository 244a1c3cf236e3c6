"""Work run on a database connection of its own, in a thread: committed at once, as another process sees it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import connections

T = TypeVar("T")


def on_own_connection(work: Callable[[], T]) -> T:
    """Run `work` in a thread with its own connection (autocommit) and return its result or raise its error.

    The test's own connection is inside a transaction that is rolled back;
    websocket consumers, Celery workers and the worker's connection handling
    see only what is committed.
    """
    result: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # handed to the caller's thread
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]
