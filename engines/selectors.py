"""Reads shared by API views, console views and consumers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.http import HttpRequest

from engines.models import Source


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
