"""The recovery sweep: close failures whose source is well again (health recovered).

Engines close the failures they can prove over (a poll or reconciliation
that works again). A degraded push stream has no such moment: it is over
when the monitor says the source is back in `event` mode with a good
verdict and no gap, for a little while. A failure that stopped recurring on
a healthy source is over too, once it has been quiet for longer than the
engine that reports it would take to report it again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from django.utils import timezone

from engines.models import StreamState
from healing.models import FailureRecord, FailureStatus

log = structlog.get_logger(__name__)

# How long a stream failure's source must be well (no new occurrence) before it counts as over.
STREAM_QUIET_S = {"stream_gaps": 5.0, "stream_silent": 10.0, "schema_invalid": 30.0, "flapping": 30.0}
STREAM_KINDS = frozenset(STREAM_QUIET_S)
MIN_QUIET_S = 120.0


def _quiet_s(failure: FailureRecord) -> float:
    if failure.kind in STREAM_KINDS and (failure.detail or {}).get("path", "push") == "push":
        return STREAM_QUIET_S[failure.kind]
    # A reconciliation-reported failure comes back once per interval at most.
    interval = float(((failure.source.reconcile if failure.source else None) or {}).get("interval_s", 300))
    return max(MIN_QUIET_S, interval * 1.5 + 10)


def failures_resolve_recovered(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    closed = 0
    open_failures = FailureRecord.objects.filter(status=FailureStatus.OPEN, source__isnull=False).select_related(
        "source"
    )
    for failure in open_failures:
        source = failure.source
        assert source is not None
        if source.paused or source.mode != "event" or source.verdict != "good":
            continue
        if now - failure.last_seen < timedelta(seconds=_quiet_s(failure)):
            continue
        stream = StreamState.objects.filter(source=source).first()
        # Seqs above the watermark that already arrived: a hole is still open.
        if failure.kind == "stream_gaps" and stream is not None and _hole(stream):
            continue
        # Compare-and-set on last_seen: a new occurrence meanwhile keeps it open.
        closed += FailureRecord.objects.filter(
            pk=failure.pk, status=FailureStatus.OPEN, last_seen=failure.last_seen
        ).update(status=FailureStatus.RESOLVED, resolved_by="recovered")
        log.info("failure_recovered", failure=failure.pk, kind=failure.kind, source=source.pk)
    return closed


def _hole(stream: StreamState) -> bool:
    return stream.contiguous_seq is not None and stream.contiguous_seq < (stream.highest_seq or 0)
