"""Rows for tests, made through the same services the API uses."""

from __future__ import annotations

from typing import Any

from engines import sources
from engines.models import Source


def source_spec(name: str = "orders", **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "connector": "http",
        "config": {"poll_url": "http://127.0.0.1:9001/changes", "snapshot_url": "http://127.0.0.1:9001/snapshot"},
    }
    spec.update(overrides)
    return spec


def make_source(name: str = "orders", **overrides: Any) -> tuple[Source, str]:
    """A source in the current tenant schema, with its webhook secret."""
    return sources.source_create(spec=sources.parse_spec(source_spec(name, **overrides)))
