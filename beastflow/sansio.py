"""One implementation for a sync and an async caller: a generator that yields its I/O, and two drivers.

Code that must run both on a thread (blocking clients) and on an event loop
(asyncio clients) is written once, as a generator: it yields what it needs
done (an "op": a value the caller's `perform` understands) and gets back the
answer, or the exception the I/O raised, at the yield, exactly as if it had
called the I/O itself. `run` performs the ops with a blocking function,
`arun` with a coroutine function. Everything but the I/O (the order of the
steps, fallbacks, retries, what is counted) is the generator's alone, so a
sync and an async twin cannot drift apart.

    def take(...) -> Generator[Op, Any, Decision]:
        try:
            answer = yield Op(...)
        except REDIS_DOWN:
            return fallback()
        return decide(answer)

    run(take(...), perform_blocking)         # on a thread
    await arun(take(...), perform_async)     # on an event loop

It costs a generator step per op, well under a microsecond.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

R = TypeVar("R")

# What a step yields and what it is sent back are its own business: its performers know them.
Steps = Generator[Any, Any, R]


def run(steps: Steps[R], perform: Callable[[Any], Any]) -> R:
    """Drive `steps` to its return value, doing each op it yields with `perform` (blocking)."""
    try:
        op = next(steps)
        while True:
            try:
                answer = perform(op)
            except BaseException as exc:  # the step sees it where it yielded, as a direct call would
                op = steps.throw(exc)
            else:
                op = steps.send(answer)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def arun(steps: Steps[R], perform: Callable[[Any], Awaitable[Any]]) -> R:
    """`run` on an event loop: each op is awaited."""
    try:
        op = next(steps)
        while True:
            try:
                answer = await perform(op)
            except BaseException as exc:  # cancellation included: the step's `finally` and `with` blocks run now
                op = steps.throw(exc)
            else:
                op = steps.send(answer)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
