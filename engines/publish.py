"""After commit: tell the world about new changes (websockets, callbacks)."""

from __future__ import annotations

from typing import Any


def changes_committed(schema: str, changes: list[dict[str, Any]]) -> None:
    """Called once per committed batch, after the commit, with its changes in seq order."""
