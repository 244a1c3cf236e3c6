"""The recovery sweep: close failures whose source is well again (health recovered).

Engines close the failures they can prove over (a poll or reconciliation
that works again). A degraded push stream has no such moment: it is over
when the monitor says the source is back in `event` mode with a good
verdict and no gap, for a little while. A failure that stopped recurring on
a healthy source is over too, once it has been quiet for longer than the
engine that reports it would take to report it again.

Flapping is judged on what it is about, the mode: it is over once the
source, contained in polling for the flap hold the hysteresis set, came back
to event mode and *stayed* there with a good verdict for its quiet time,
with no hole in the seqs (polling kept the data whole meanwhile). A quiet
time counted from the last flap alone would close it the moment the source
returns, before it has shown it stays. A push-stream failure of a source
declared to receive no webhooks (`push.expected` false) is closed at once:
there is no push left to come back. Every failure closed here keeps the
facts it was closed on in `detail["resolution"]`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog
from django.utils import timezone

from engines.models import ModeSwitch, Source, StreamState
from healing.models import FailureRecord, FailureStatus

log = structlog.get_logger(__name__)

# How long a stream failure's source must be well (no new occurrence) before it counts as over.
STREAM_QUIET_S = {"stream_gaps": 5.0, "stream_silent": 10.0, "schema_invalid": 30.0, "flapping": 30.0}
STREAM_KINDS = frozenset(STREAM_QUIET_S)
MIN_QUIET_S = 120.0
# Kinds that are not over while seqs above the watermark arrived and the ones before them did not.
NEEDS_NO_HOLE = frozenset({"stream_gaps", "flapping"})
# Switches shown in a flapping failure's resolution (a clean way back is two).
PATH_SHOWN = 6


def quiet_s(failure: FailureRecord) -> float:
    """How long the failure must stay quiet on a healthy source before the sweep closes it."""
    if needs_event_mode(failure):
        return STREAM_QUIET_S[failure.kind]
    # A reconciliation-reported failure comes back once per interval at most.
    interval = float(((failure.source.reconcile if failure.source else None) or {}).get("interval_s", 300))
    return max(MIN_QUIET_S, interval * 1.5 + 10)


def needs_event_mode(failure: FailureRecord) -> bool:
    """A push-stream failure: only the source back on push (event mode) proves it over."""
    return failure.kind in STREAM_KINDS and (failure.detail or {}).get("path", "push") == "push"


def quiet_since(failure: FailureRecord, source: Source) -> datetime:
    """Flapping counts its quiet from the return to event mode too, the others from their last occurrence."""
    if failure.kind == "flapping":
        return max(failure.last_seen, source.mode_since)
    return failure.last_seen


def failures_resolve_recovered(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    closed = 0
    open_failures = FailureRecord.objects.filter(status=FailureStatus.OPEN, source__isnull=False).select_related(
        "source"
    )
    for failure in open_failures:
        source = failure.source
        assert source is not None
        if not source.push_expected and needs_event_mode(failure):
            # The upstream was declared to send no webhooks: a push failure has nothing left to recover.
            closed += _close(failure, source, None, now, resolved_by="push_not_expected")
            continue
        if source.paused or source.mode != "event" or source.verdict != "good":
            continue
        if now - quiet_since(failure, source) < timedelta(seconds=quiet_s(failure)):
            continue
        stream = StreamState.objects.filter(source=source).first()
        # Seqs above the watermark that already arrived: a hole is still open.
        if failure.kind in NEEDS_NO_HOLE and stream is not None and _hole(stream):
            continue
        closed += _close(failure, source, stream, now, resolved_by="recovered")
    return closed


def _close(
    failure: FailureRecord, source: Source, stream: StreamState | None, now: datetime, *, resolved_by: str
) -> int:
    # Compare-and-set on last_seen: a new occurrence meanwhile keeps it open.
    closed = FailureRecord.objects.filter(pk=failure.pk, status=FailureStatus.OPEN, last_seen=failure.last_seen).update(
        status=FailureStatus.RESOLVED,
        resolved_by=resolved_by,
        detail={**(failure.detail or {}), "resolution": _resolution(failure, source, stream, now)},
    )
    log.info("failure_recovered", failure=failure.pk, kind=failure.kind, source=source.pk, by=resolved_by)
    return closed


def _resolution(failure: FailureRecord, source: Source, stream: StreamState | None, now: datetime) -> dict[str, Any]:
    """What the sweep saw when it closed the failure (shown with it in the API and console)."""
    facts: dict[str, Any] = {
        "mode": source.mode,
        "verdict": source.verdict,
        "in_event_s": round((now - source.mode_since).total_seconds(), 1),
        "quiet_s": round((now - failure.last_seen).total_seconds(), 1),
    }
    if not source.push_expected:
        facts["push_expected"] = False
    if stream is not None:
        facts["seq"] = {
            "contiguous": stream.contiguous_seq,
            "highest": stream.highest_seq,
            "upstream": stream.upstream_seq,
        }
    if failure.kind == "flapping":
        facts.update(_containment(failure, source))
    return facts


def _containment(failure: FailureRecord, source: Source) -> dict[str, Any]:
    """How the flapping ended: the switches after the last flap, and how long the hold kept it in polling.

    A contained flap ends in one clean recovery, polling -> hybrid -> event:
    two switches, the first when the hold let it go.
    """
    after = ModeSwitch.objects.filter(source=source, at__gt=failure.last_seen).order_by("at", "id")
    path = list(after.values_list("at", "to_mode", "transition")[:PATH_SHOWN])
    held_s = (path[0][0] - failure.last_seen).total_seconds() if path else None
    return {
        "switches_since_flap": after.count(),
        "held_in_polling_s": None if held_s is None else round(held_s, 1),
        "path_back": [f"{to_mode}:{transition}" for _, to_mode, transition in path],
    }


def _hole(stream: StreamState) -> bool:
    return stream.contiguous_seq is not None and stream.contiguous_seq < (stream.highest_seq or 0)
