"""What a push mapping makes of a sample request, storing nothing (POST /sources/{id}/mapping/preview)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from engines.connectors.push_mapping import Body, PushProgram, event_render
from engines.ingest.service import data_schema_check
from engines.models import Source
from engines.schemas import PushMapping, field_errors


class PreviewError(Exception):
    """A preview request that cannot be run (no mapping to try, or an invalid one)."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []


def mapping_preview(
    *, source: Source, headers: dict[str, str], body: Any, mapping: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`{"events", "ignored", "errors"}` for one request, as the source's ingest would read it.

    `mapping` tries an unsaved mapping instead of the source's own. The data
    schema check is the source's. The signature is not checked: a sample
    has none worth checking (ingest checks it before the mapping runs).
    """
    spec = _mapping_of(source, mapping)
    program = PushProgram(spec, data_check=data_schema_check(source.data_schema) if source.data_schema else None)
    # Names lower-cased as ingest has them; the body as parsed JSON (hashed the reference way).
    result = program.run({name.lower(): value for name, value in headers.items()}, Body(body, decoded=False))
    return {
        "events": [event_render(event) for event in result.events],
        "ignored": result.ignored,
        "errors": result.errors,
    }


def _mapping_of(source: Source, mapping: dict[str, Any] | None) -> PushMapping:
    if mapping is not None:
        try:
            return PushMapping.model_validate(mapping)
        except ValidationError as exc:
            raise PreviewError(422, "The mapping is invalid; see errors.", field_errors(exc, prefix="mapping")) from exc
    stored = (source.push or {}).get("mapping")
    if not stored:
        raise PreviewError(
            422,
            "The source has no push mapping (its scheme takes BeastFlow events as they are): send one in `mapping`.",
            [{"field": "mapping", "message": "required: the source has none"}],
        )
    return PushMapping.model_validate(stored)
