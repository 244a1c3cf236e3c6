"""Reads shared by API views, console views and consumers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest

from engines.models import Change, Record, Source


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
        "data_schema": source.data_schema,
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
