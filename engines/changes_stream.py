"""The changes stream's ordering rules: pure Python over plain data.

A websocket client gets every change after its `after`, in seq order, with
no gap and no duplicate, although live changes arrive by a lossy channel
(Redis pub/sub drops what is published while a process reconnects, a slow
client's queue overflows, two processes may publish their batches in
either order). The consumer keeps one number, the cursor: every change
with seq <= cursor has been sent or did not match the filter. Live batches
carry the whole tenant's changes (unfiltered), so their seqs tell whether
anything is missing before them; what is missing is read from the
database, which is the truth.

`seq` is per tenant and commit order equals seq order (engines.models.Change),
so when a batch starting at seq s arrives, every change below s is already
committed and readable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_DIGITS = re.compile(r"^\d{1,18}$")

Change = Mapping[str, Any]


@dataclass(frozen=True)
class StreamParams:
    after: int
    source_id: int | None


class ParamError(ValueError):
    """A query parameter of the stream that cannot be used; the message says which."""


def parse_stream_params(query: Mapping[str, Sequence[str]]) -> StreamParams:
    """`after` (default 0: the whole history) and `source` (default: every source)."""
    after = _single(query, "after")
    source = _single(query, "source")
    if after is not None and not _DIGITS.match(after):
        raise ParamError("after must be a non-negative integer")
    if source is not None and (not _DIGITS.match(source) or int(source) == 0):
        raise ParamError("source must be a source id")
    return StreamParams(after=int(after) if after else 0, source_id=int(source) if source else None)


def _single(query: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise ParamError(f"{name} is given more than once")
    return values[0].strip()


@dataclass(frozen=True)
class LivePlan:
    """What to do with one live batch.

    - `fill_below`: first read every change with cursor < seq < fill_below
      from the database (publishes before this batch were lost or are late);
      None when the batch follows the cursor directly.
    - `send`: the batch's changes to send after that, in seq order, filtered.
    - `cursor`: the cursor once they are sent (the batch's highest seq, even
      when the filter kept none of its changes).
    """

    fill_below: int | None
    send: list[Change]
    cursor: int


def plan_live(cursor: int, batch: Sequence[Change], *, source_id: int | None) -> LivePlan:
    """Plan a live batch against the cursor.

    Steps:

    1. Drop changes at or below the cursor: the backlog or an earlier batch
       sent them already (a late batch is dropped whole).
    2. Order the rest by seq (a batch merged from concurrent commits may
       interleave).
    3. If the first one is not cursor + 1, the changes in between must be
       read from the database first.
    4. Keep the source's changes only; the cursor still moves past the others.
    """
    fresh = [change for change in batch if change["seq"] > cursor]
    if not fresh:
        return LivePlan(fill_below=None, send=[], cursor=cursor)
    if any(fresh[i]["seq"] >= fresh[i + 1]["seq"] for i in range(len(fresh) - 1)):
        fresh = sorted({change["seq"]: change for change in fresh}.values(), key=lambda change: change["seq"])
    first = fresh[0]["seq"]
    fill_below = first if first > cursor + 1 else None
    send = fresh if source_id is None else [change for change in fresh if change["source"] == source_id]
    return LivePlan(fill_below=fill_below, send=send, cursor=fresh[-1]["seq"])
