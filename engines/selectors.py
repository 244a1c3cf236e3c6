"""Reads shared by API views, console views and consumers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest

from engines.models import Change, HealthSample, ModeSwitch, PollRun, ReconciliationRun, Record, Source, StreamState


def source_get(source_id: Any) -> Source | None:
    try:
        pk = int(source_id)
    except (TypeError, ValueError):
        return None
    return Source.objects.filter(pk=pk).first()


def ingest_path(source_id: int) -> str:
    return f"/api/v1/sources/{source_id}/events"


def source_render(source: Source, *, request: HttpRequest | None = None) -> dict[str, Any]:
    path = ingest_path(source.pk)
    return {
        "id": source.pk,
        "name": source.name,
        "connector": source.connector,
        "config": source.config,
        "hysteresis": source.hysteresis,
        "poll": source.poll,
        "reconcile": source.reconcile,
        "health": source.health,
        "data_schema": source.data_schema,
        "preset": source.preset or None,
        # Write-only secret: only whether one is set.
        "push": {
            **(source.push or {"scheme": "beastflow"}),
            "expected": source.push_expected,  # sources stored before the field existed expect pushes
            "secret_set": bool(source.push_secret_encrypted),
        },
        "mode": source.mode,
        "mode_since": source.mode_since.isoformat(),
        "paused": source.paused,
        "ingest_url": request.build_absolute_uri(path) if request is not None else path,
        "created_at": source.created_at.isoformat(),
        "updated_at": source.updated_at.isoformat(),
    }


def sources_render(sources: Sequence[Source], *, request: HttpRequest | None = None) -> list[dict[str, Any]]:
    return [source_render(source, request=request) for source in sources]


def change_render(change: Change) -> dict[str, Any]:
    return {
        "seq": change.seq,
        "source": change.source_id,
        "event_id": change.event_id,
        "type": change.type,
        "key": change.key,
        "version": change.version,
        "data": change.data,
        "origin": change.origin,
        "committed_at": change.committed_at.isoformat(),
    }


def changes_after(after: int, *, source_id: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Changes with seq > after, oldest first, in the contract's item shape."""
    queryset = Change.objects.filter(seq__gt=after)
    if source_id is not None:
        queryset = queryset.filter(source_id=source_id)
    return [change_render(change) for change in queryset.order_by("seq")[:limit]]


def record_render(record: Record) -> dict[str, Any]:
    return {
        "key": record.key,
        "version": record.version,
        "data": record.data,
        "hash": record.hash,
        "updated_at": record.updated_at.isoformat(),
    }


def record_get(source_id: int, key: str) -> Record | None:
    return Record.objects.filter(source_id=source_id, key=key, deleted=False).first()


def records_live(source_id: int) -> QuerySet[Record]:
    return Record.objects.filter(source_id=source_id, deleted=False)


def source_health(source: Source) -> dict[str, Any]:
    """docs/contract.md §3 health: the monitor's latest judgement plus the raw stream signals."""
    stream = StreamState.objects.filter(source=source).first()
    latest = HealthSample.objects.filter(source=source).order_by("-at").first()
    return {
        "mode": source.mode,
        "paused": source.paused,
        "health_score": source.health_score if source.health_score is not None else 100,
        "verdict": source.verdict or None,
        "mode_since": source.mode_since.isoformat(),
        "last_event_at": _iso(stream.last_event_at) if stream else None,
        "last_push_at": _iso(stream.last_push_at) if stream else None,
        "last_heartbeat_at": _iso(stream.last_heartbeat_at) if stream else None,
        "contiguous_seq": stream.contiguous_seq if stream else None,
        "highest_seq": stream.highest_seq if stream else None,
        "upstream_seq": stream.upstream_seq if stream else None,
        "pending_seqs": len(stream.pending_seqs) if stream else 0,
        "expected_interval_s": stream.expected_interval_s if stream else None,
        "delivery_rate": latest.delivery_rate if latest else None,
        "events_total": stream.events_total if stream else 0,
        "changes_total": stream.changes_total if stream else 0,
        "duplicates_total": stream.duplicates_total if stream else 0,
        "push_errors_total": stream.push_errors_total if stream else 0,
        "next_poll_at": _iso(source.next_poll_at),
        # What the latest poll of a source without seqs found push had missed (docs/rest-connector.md).
        "polled_missed": stream.polled_missed if stream else 0,
        "polled_missed_at": _iso(stream.polled_missed_at) if stream else None,
        "last_audit_at": _iso(stream.last_audit_at) if stream else None,
        "measures": latest.measures if latest else {},
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def mode_switch_render(switch: ModeSwitch) -> dict[str, Any]:
    return {
        "id": switch.pk,
        "from_mode": switch.from_mode,
        "to_mode": switch.to_mode,
        "transition": switch.transition,
        "reason": switch.reason,
        "signals": switch.signals,
        "at": switch.at.isoformat(),
        "validated": switch.validated,
        "rolled_back": switch.rolled_back,
        "actor": switch.actor or None,
    }


def poll_run_render(run: PollRun) -> dict[str, Any]:
    return {
        "id": run.pk,
        "trigger": run.trigger,
        "status": run.status,
        "started_at": run.started_at.isoformat(),
        "finished_at": _iso(run.finished_at),
        "from_seq": run.from_seq,
        "to_seq": run.to_seq,
        "pages": run.pages,
        "events": run.events,
        "new_events": run.new_events,
        "changes": run.changes,
        "caught_up": run.caught_up,
        "missed": run.missed,
        "details": run.details or {},
        "http_status": run.http_status,
        "error_kind": run.error_kind or None,
        "error": run.error or None,
        "next_interval_s": run.next_interval_s,
    }


def reconciliation_render(run: ReconciliationRun) -> dict[str, Any]:
    """docs/contract.md §3 reconciliation fields, then what the run measured."""
    return {
        "id": run.pk,
        "status": run.status,
        "started_at": run.started_at.isoformat(),
        "finished_at": _iso(run.finished_at),
        "upstream_count": run.upstream_count,
        "local_count": run.local_count,
        "missing": run.missing,
        "changed": run.changed,
        "deleted": run.deleted,
        "corrections": run.corrections,
        "trigger": run.trigger,
        "mode": run.mode or None,
        "in_flight": run.in_flight,
        "conflicts": run.conflicts,
        "digest_root": run.digest_root or None,
        "local_digest_root": run.local_digest_root or None,
        "buckets_differing": run.buckets_differing,
        "pages_fetched": run.pages_fetched,
        "records_fetched": run.records_fetched,
        "duration_ms": run.duration_ms,
        "max_change_ratio": run.max_change_ratio,
        "error_kind": run.error_kind or None,
        "error": run.error or None,
        "samples": run.samples,
    }


def reconciliations_of(source_id: int) -> QuerySet[ReconciliationRun]:
    return ReconciliationRun.objects.filter(source_id=source_id)
