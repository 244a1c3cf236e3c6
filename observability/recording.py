"""Failure recordings: the upstream traffic and the monitor's inputs around a failure, bounded, stored per tenant.

What a recording holds (docs/observability.md, "Failure replay", gives the
format field by field) for the failure's source, within a window around the
failure's moment (`before_s` before it, `after_s` after it):

- `judgements`: the monitor's inputs at each judgement (engines/flight.py):
  what a replay (observability/replay.py) decides again;
- `switches`: the mode switches written, with the time of the judgement that
  made each (from its audit row's signals);
- `polls`: the requests BeastFlow made upstream and what they answered
  (poll runs: trigger, seqs asked and reached, pages, events, HTTP status,
  error kind, caught up, missed);
- `polled_events`: the events those polls brought (ids, seqs, when received
  and when they occurred: what validation counts as missed by push);
- `pushes`: the events the upstream pushed (ids, types, seqs, when received);
- `samples`: the monitor's health samples (score, verdict, rate).

Bounded: the window (default 120 s before, 180 s after), the flight
recorder's length, and `max_bytes` (default 1 MiB): over it, pushes are
thinned first (every other one, counted in `truncated`), then polled events,
then the oldest judgements, until it fits.

Recorded automatically for a monitor switch out of event mode: the switch
marks the moment (engines.flight.mark_degraded) and beat's observability
tick records it once `after_s` has passed, attached to the stream failure
the switch raised. `POST /api/v1/failures/{id}/recording` records any
failure on demand.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from django.db import transaction
from django.utils import timezone
from prometheus_client import Counter

from engines import flight
from engines.models import Event, HealthSample, ModeSwitch, PollRun, Source
from engines.monitor import MISS_GRACE_S
from observability.models import FailureRecording
from observability.replay import FORMAT, VERSION

log = structlog.get_logger(__name__)

RECORDINGS = Counter(
    "beastflow_failure_recordings_total", "Failure recordings stored, by what made them", ["trigger", "truncated"]
)

BEFORE_S = 120.0
AFTER_S = 180.0
MAX_BYTES = 1024 * 1024
MAX_ROWS = 20_000  # per kind, read from the database before any thinning


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else round(value.timestamp(), 6)


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def anchor_of(failure: Any) -> float:
    """The failure's moment: its first sighting."""
    return float(failure.first_seen.timestamp())


def build(
    failure: Any,
    *,
    before_s: float = BEFORE_S,
    after_s: float = AFTER_S,
    anchor: float | None = None,
    max_bytes: int = MAX_BYTES,
) -> dict[str, Any]:
    """The recording document of `failure` (in its tenant's schema), around `anchor` (default: its first sighting)."""
    anchor = anchor_of(failure) if anchor is None else anchor
    start, end = anchor - before_s, anchor + after_s
    source = Source.objects.filter(pk=failure.source_id).first() if failure.source_id else None
    document: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "recorded_at": timezone.now().isoformat(),
        "failure": {
            "id": failure.pk,
            "kind": failure.kind,
            "first_seen": _epoch(failure.first_seen),
            "last_seen": _epoch(failure.last_seen),
            "detail": failure.detail,
        },
        "source": None
        if source is None
        else {
            "id": source.pk,
            "name": source.name,
            "connector": source.connector,
            "hysteresis": source.hysteresis or {},
            "health": source.health or {},
        },
        "window": {"start": start, "end": end, "anchor": anchor, "before_s": before_s, "after_s": after_s},
        "constants": {"miss_grace_s": MISS_GRACE_S},
        "judgements": [],
        "switches": [],
        "polls": [],
        "polled_events": [],
        "pushes": [],
        "samples": [],
        "truncated": {},
    }
    if source is None:
        return _fit(document, max_bytes)
    since, until = _at(start), _at(end)
    document["judgements"] = flight.judgements(source.pk, since=start, until=end)
    document["switches"] = [
        {
            "at": _epoch(switch.at),
            "judged_at": (switch.signals.get("signals") or {}).get("now") if isinstance(switch.signals, dict) else None,
            "from": switch.from_mode,
            "to": switch.to_mode,
            "transition": switch.transition,
            "reason": switch.reason,
            "actor": switch.actor,
        }
        for switch in ModeSwitch.objects.filter(source=source, at__gte=since, at__lte=until).order_by("at", "id")
    ]
    document["polls"] = [
        {
            "started_at": _epoch(run.started_at),
            "finished_at": _epoch(run.finished_at),
            "trigger": run.trigger,
            "status": run.status,
            "from_seq": run.from_seq,
            "to_seq": run.to_seq,
            "pages": run.pages,
            "events": run.events,
            "new_events": run.new_events,
            "missed": run.missed,
            "caught_up": run.caught_up,
            "http_status": run.http_status,
            "error_kind": run.error_kind,
            "error": run.error[:300],
        }
        for run in PollRun.objects.filter(source=source, started_at__gte=since, started_at__lte=until).order_by(
            "started_at", "id"
        )[:MAX_ROWS]
    ]
    events = Event.objects.filter(source_id=source.pk, received_at__gte=since, received_at__lte=until)
    document["polled_events"] = [
        {
            "id": e[0],
            "seq": e[1],
            "type": e[2],
            "origin": e[3],
            "received_at": _epoch(e[4]),
            "occurred_at": _epoch(e[5]),
        }
        for e in events.exclude(origin="push")
        .order_by("received_at")
        .values_list("event_id", "upstream_seq", "type", "origin", "received_at", "occurred_at")[:MAX_ROWS]
    ]
    document["pushes"] = [
        {"id": e[0], "seq": e[1], "type": e[2], "received_at": _epoch(e[3])}
        for e in events.filter(origin="push")
        .order_by("received_at")
        .values_list("event_id", "upstream_seq", "type", "received_at")[:MAX_ROWS]
    ]
    document["samples"] = [
        {"at": _epoch(s.at), "score": s.score, "verdict": s.verdict, "mode": s.mode, "delivery_rate": s.delivery_rate}
        for s in HealthSample.objects.filter(source=source, at__gte=since, at__lte=until).order_by("at")
    ]
    return _fit(document, max_bytes)


def _size(document: dict[str, Any]) -> int:
    return len(json.dumps(document, separators=(",", ":"), default=str).encode())


def _fit(document: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """Under `max_bytes`: thin the pushes, then the polled events, then drop the oldest judgements."""
    truncated: dict[str, int] = document["truncated"]
    for part in ("pushes", "polled_events"):
        while _size(document) > max_bytes and document[part]:
            rows = document[part]
            kept = rows[::2] if len(rows) > 1 else []
            truncated[part] = truncated.get(part, 0) + len(rows) - len(kept)
            document[part] = kept
    while _size(document) > max_bytes and document["judgements"]:
        cut = max(1, len(document["judgements"]) // 10)
        document["judgements"] = document["judgements"][cut:]
        truncated["judgements"] = truncated.get("judgements", 0) + cut
    document["size_bytes"] = _size(document)
    return document


@transaction.atomic
def recording_store(
    *,
    failure: Any,
    before_s: float = BEFORE_S,
    after_s: float = AFTER_S,
    anchor: float | None = None,
    trigger: str = "api",
) -> FailureRecording:
    """Record `failure` now and keep it (replacing an earlier recording of it); `trigger`: api or degrade."""
    document = build(failure, before_s=before_s, after_s=after_s, anchor=anchor)
    window = document["window"]
    recording, _ = FailureRecording.objects.update_or_create(
        failure=failure,
        defaults={
            "source_id": failure.source_id,
            "window_start": _at(window["start"]),
            "window_end": _at(window["end"]),
            "judgements": len(document["judgements"]),
            "size_bytes": document["size_bytes"],
            "truncated": bool(document["truncated"]),
            "data": document,
        },
    )
    RECORDINGS.labels(trigger=trigger, truncated=str(recording.truncated).lower()).inc()
    log.info(
        "failure_recorded",
        trigger=trigger,
        failure=failure.pk,
        source=failure.source_id,
        judgements=recording.judgements,
        bytes=recording.size_bytes,
    )
    return recording


def failure_for_degradation(source_id: int, at: float) -> Any:
    """The stream failure a degrading switch at `at` raised: the source's failure seen closest to it."""
    from healing.models import FailureRecord

    near = FailureRecord.objects.filter(
        source_id=source_id,
        first_seen__lte=_at(at) + timedelta(seconds=60),
        last_seen__gte=_at(at) - timedelta(seconds=60),
    ).exclude(kind__in=("predicted_degradation",))
    return min(near, key=lambda f: abs(f.first_seen.timestamp() - at), default=None)


def record_due(*, now: float | None = None, after_s: float = AFTER_S, before_s: float = BEFORE_S) -> int:
    """Record every marked degradation whose window after has passed; returns how many were recorded."""
    from django_tenants.utils import schema_context

    from beastflow.redis_client import get_redis, key

    now = time.time() if now is None else now
    client = get_redis()
    due_key = key(*flight.DUE_KEY_PARTS)
    recorded = 0
    members: list[bytes] = list(client.zrangebyscore(due_key, "-inf", now - after_s))  # type: ignore[arg-type]
    for member in members:
        # Taken by one tick only: another beat tick running at once skips what this one removed.
        if not client.zrem(due_key, member):
            continue
        try:
            schema, source_id, at = member.decode().rsplit(":", 2)
            # A savepoint each: a member whose schema is gone (a deleted tenant) fails its own
            # statement only, never the transaction the others are recorded in.
            with schema_context(schema), transaction.atomic():
                failure = failure_for_degradation(int(source_id), float(at))
                if failure is None:
                    log.info("failure_recording_skipped", schema=schema, source=source_id, reason="no failure found")
                    continue
                # Around the switch itself: a failure that folds repeats was first seen earlier.
                recording_store(
                    failure=failure, before_s=before_s, after_s=after_s, anchor=float(at), trigger="degrade"
                )
                recorded += 1
        except Exception:
            log.exception("failure_recording_failed", member=member)
    return recorded
