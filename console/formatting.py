"""Pure formatting for the console (no Django): relative times, rates, health bands."""

from __future__ import annotations

from datetime import datetime


def relative_time(at: datetime, now: datetime) -> str:
    """'just now', '42 s ago', '5 min ago', '3 h ago', '2 d ago'; 'in 5 s' for the future."""
    seconds = (now - at).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 2:
        return "just now"
    if seconds < 60:
        text = f"{int(seconds)} s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)} min"
    elif seconds < 86400:
        text = f"{int(seconds // 3600)} h"
    else:
        text = f"{int(seconds // 86400)} d"
    return f"in {text}" if future else f"{text} ago"


def health_band(score: int | None) -> str:
    """A word beside the colour, so health reads without colour: good, degraded or bad."""
    if score is None:
        return "unknown"
    if score >= 80:
        return "good"
    if score >= 50:
        return "degraded"
    return "bad"


def rate_text(rate: float | None) -> str:
    if rate is None:
        return "-"
    if rate >= 100:
        return f"{rate:.0f}/s"
    if rate >= 10:
        return f"{rate:.1f}/s"
    return f"{rate:.2f}/s"
