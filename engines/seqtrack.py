"""Sequence tracking: how far a source's feed has arrived without holes.

Pure. `contiguous` is the highest seq such that every seq up to it has been
seen; seqs that arrive early (above a hole) wait in `pending` until the
hole fills. `pending` is bounded so a long outage cannot grow it without
limit: when it overflows, the lowest pending seqs are dropped, which only
makes the tracker report a gap that polling then fills from `contiguous`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MAX_PENDING = 2_000


@dataclass(frozen=True)
class SeqState:
    contiguous: int | None
    pending: tuple[int, ...] = ()
    highest: int | None = None

    @property
    def gap(self) -> int:
        """Seqs known to be missing between contiguous and highest seen."""
        if self.contiguous is None or self.highest is None:
            return 0
        return max(0, self.highest - self.contiguous - len(self.pending))


def advance(state: SeqState, seqs: Iterable[int]) -> SeqState:
    """Fold newly seen seqs into the state.

    Steps: the first seq ever seen starts the stream just below it (history
    before BeastFlow knew the source is not a gap); seqs at or below
    `contiguous` are old news; the rest join `pending`; then `contiguous`
    walks up while the next seq is pending.
    """
    incoming = sorted(set(seqs))
    if not incoming:
        return state
    contiguous = state.contiguous if state.contiguous is not None else incoming[0] - 1
    highest = max(incoming[-1], state.highest if state.highest is not None else incoming[-1])
    waiting = {seq for seq in state.pending if seq > contiguous}
    waiting.update(seq for seq in incoming if seq > contiguous)
    while contiguous + 1 in waiting:
        contiguous += 1
        waiting.discard(contiguous)
    pending = sorted(waiting)
    if len(pending) > MAX_PENDING:
        pending = pending[-MAX_PENDING:]
    return SeqState(contiguous=contiguous, pending=tuple(pending), highest=highest)
