"""A request budget per time window, as GitHub's primary rate limit works. Pure.

The window opens with the first request after the previous one closed and
lasts `window_s`; within it at most `limit` requests are served. What a
client sees (`X-RateLimit-Limit`, `-Remaining`, `-Used`, `-Reset` in unix
seconds) is `RateWindow.state`. `limit=None` serves everything but still
counts, so the headers stay truthful.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateState:
    limit: int | None
    remaining: int | None
    used: int
    reset: int  # unix seconds when the window closes

    def headers(self, resource: str = "core") -> list[tuple[str, str]]:
        limit = 5000 if self.limit is None else self.limit
        remaining = limit if self.remaining is None else self.remaining
        return [
            ("x-ratelimit-limit", str(limit)),
            ("x-ratelimit-remaining", str(remaining)),
            ("x-ratelimit-reset", str(self.reset)),
            ("x-ratelimit-used", str(self.used)),
            ("x-ratelimit-resource", resource),
        ]


class RateWindow:
    def __init__(self, *, limit: int | None, window_s: float, clock: Callable[[], float] = time.time) -> None:
        self.configure(limit=limit, window_s=window_s)
        self._clock = clock
        self._start: float | None = None
        self._used = 0
        self.refused = 0  # requests refused for the budget, over the run

    def configure(self, *, limit: int | None, window_s: float) -> None:
        if limit is not None and limit < 0:
            raise ValueError("rate_limit must be >= 0 (or null: unlimited)")
        if not window_s > 0:
            raise ValueError("rate_window_s must be > 0")
        self.limit = limit
        self.window_s = window_s

    def reset(self) -> None:
        self._start, self._used, self.refused = None, 0, 0

    def state(self) -> RateState:
        now = self._roll()
        start = now if self._start is None else self._start
        remaining = None if self.limit is None else max(self.limit - self._used, 0)
        return RateState(self.limit, remaining, self._used, math.ceil(start + self.window_s))

    def take(self) -> bool:
        """Spend one request of the budget; False (and nothing spent) when none is left."""
        now = self._roll()
        if self._start is None:
            self._start = now
        if self.limit is not None and self._used >= self.limit:
            self.refused += 1
            return False
        self._used += 1
        return True

    def give_back(self) -> None:
        """Return the request just taken: GitHub does not count a 304 against the budget."""
        self._used = max(self._used - 1, 0)

    def _roll(self) -> float:
        now = self._clock()
        if self._start is not None and now >= self._start + self.window_s:
            self._start, self._used = None, 0
        return now
