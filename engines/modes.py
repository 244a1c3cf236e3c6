"""The vocabulary every engine shares: a source's mode and the monitor's verdict.

Plain `StrEnum`s (no Django) so that pure modules can use them; the models
build their `TextChoices` from the same values and the API prints them as is.
"""

from __future__ import annotations

from enum import StrEnum


class Mode(StrEnum):
    """How a source's data reaches BeastFlow (docs/modes.md)."""

    EVENT = "event"  # push only: cheap and fast while the stream is healthy
    HYBRID = "hybrid"  # push plus polls from the contiguous watermark
    POLLING = "polling"  # polls carry the source; pushes are still accepted


class Verdict(StrEnum):
    """The StreamMonitor's judgement of a push stream at one tick."""

    GOOD = "good"
    BAD = "bad"
