"""Which failure a degraded push stream is, from the monitor's health penalties. Pure."""

from __future__ import annotations

from collections.abc import Mapping


def stream_failure_kind(penalties: Mapping[str, int]) -> tuple[str, str]:
    """(failure kind, path) for the largest penalty: refused pushes, missing seqs or missed pushes, or silence."""
    if not penalties:
        return "stream_silent", "push"
    worst = max(sorted(penalties), key=lambda name: penalties[name])
    if worst == "push_errors":
        return "schema_invalid", "push"
    if worst in ("gaps", "missed_pushes"):  # a lost delivery, seen by seqs or by an audit poll
        return "stream_gaps", "push"
    return "stream_silent", "push"
