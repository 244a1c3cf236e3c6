"""Keyset pagination for list endpoints (docs/contract.md §2).

`{"results": [...], "next_cursor": str|null}`, newest first, `?limit=` up
to 500 and `?cursor=` for the next page. The cursor is the last row's key,
so pages stay stable while rows are added.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db.models import Model, QuerySet

from beastflow.problems import ProblemError

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class Page:
    results: list[dict[str, Any]]
    next_cursor: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"results": self.results, "next_cursor": self.next_cursor}


def parse_limit(raw: str | None, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ProblemError(400, "limit must be an integer", errors=[{"field": "limit", "message": "not an integer"}])
    if not 1 <= value <= maximum:
        raise ProblemError(
            400, f"limit must be between 1 and {maximum}", errors=[{"field": "limit", "message": "out of range"}]
        )
    return value


def encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(raw: str) -> int:
    try:
        padded = raw + "=" * (-len(raw) % 4)
        return int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ProblemError(
            400, "cursor is not one this API gave out", errors=[{"field": "cursor", "message": "invalid"}]
        )


def paginate_desc(
    queryset: QuerySet[M],
    params: Any,
    render: Callable[[Sequence[M]], list[dict[str, Any]]],
    *,
    key: str = "pk",
) -> Page:
    """Newest first by an integer key."""
    limit = parse_limit(params.get("limit"))
    cursor = params.get("cursor")
    if cursor:
        queryset = queryset.filter(**{f"{key}__lt": decode_cursor(cursor)})
    rows = list(queryset.order_by(f"-{key}")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(getattr(rows[-1], key)) if more and rows else None
    return Page(results=render(rows), next_cursor=next_cursor)
