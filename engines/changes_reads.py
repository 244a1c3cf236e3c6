"""Reads behind the changes stream, each in an explicit tenant schema.

Consumers call these through `database_sync_to_async`, whose thread may
differ from call to call and carries no tenant, so every function takes
the schema and sets it itself.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Max
from django_tenants.utils import schema_context

from engines.models import Change, SeqCounter, Source
from engines.partitions import changes_floor
from engines.selectors import change_render


def source_exists(schema: str, source_id: int) -> bool:
    with schema_context(schema):
        return Source.objects.filter(pk=source_id).exists()


def committed_head() -> int:
    """The highest seq committed in the current schema.

    SeqCounter is updated under its row lock by the transaction that inserts
    the changes, and commit order is seq order, so its committed value is a
    seq below which every change is committed and visible.
    """
    last = SeqCounter.objects.filter(pk=1).values_list("last", flat=True).first()
    if last is not None:
        return int(last)
    # A schema whose counter row is missing (never expected after migration
    # engines 0002): the newest change is the best answer there is.
    return int(Change.objects.aggregate(head=Max("seq"))["head"] or 0)


class ChangesGoneError(Exception):
    """The changes after a reader's cursor were removed by retention up to `floor`."""

    def __init__(self, floor: int) -> None:
        super().__init__(f"changes up to seq {floor} are no longer kept; resume with after >= {floor}")
        self.floor = floor


def changes_page(
    schema: str, *, after: int, source_id: int | None, limit: int, below: int | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Changes with after < seq <= bound, oldest first, at most `limit`.

    `bound` is `below - 1` when given, else the committed head read before
    the changes, so that every change up to it is visible to the second
    query. Returns the rendered changes and the bound: when fewer than
    `limit` came back, nothing matching is left at or below the bound.
    Raises ChangesGoneError when `after` is below the retention floor, read
    after the changes (retention raises the floor before dropping any).
    """
    with schema_context(schema):
        bound = below - 1 if below is not None else committed_head()
        changes: list[dict[str, Any]] = []
        if bound > after:
            queryset = Change.objects.filter(seq__gt=after, seq__lte=bound)
            if source_id is not None:
                queryset = queryset.filter(source_id=source_id)
            changes = [change_render(change) for change in queryset.order_by("seq")[:limit]]
        floor = changes_floor()
        if after < floor:
            raise ChangesGoneError(floor)
        return changes, bound
