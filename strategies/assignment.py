"""Which arm of an experiment a source is in: deterministic, stratified, balanced.

Pure. Steps (`assign`):

1. Every source gets a position from a hash of the experiment's salt and
   its id (SHA-256, not Python's `hash`, which is salted per process): the
   same experiment always orders the same sources the same way, and two
   experiments order them independently.
2. A source takes part when its position's first draw is below `coverage`
   (the share of the tenant's sources the experiment may touch).
3. Within each stratum (a connector, a mode, a traffic class: whatever the
   caller puts in `Unit.stratum`), the taking-part sources sorted by their
   second draw are dealt systematically: the i-th is treatment when
   floor((i + 1) * share + offset) > floor(i * share + offset), with an
   offset drawn per stratum. Each stratum's treatment count is then within
   one of `share` times its size, so both arms see comparable sources, and
   the offset keeps one-source strata from always landing in control.

The answer depends only on the set of units, never on their order. A source
that joins the tenant later is placed by `arm_of` (step 2, then its second
draw against `share`): it never moves a source already placed.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Arm(StrEnum):
    CONTROL = "control"
    TREATMENT = "treatment"


@dataclass(frozen=True)
class Unit:
    """A source to place: its id and the stratum it is balanced within."""

    id: int
    stratum: str = ""


def draw(salt: str, *parts: object) -> float:
    """A uniform number in [0, 1) determined by the salt and the parts."""
    text = "\x1f".join([salt, *(str(part) for part in parts)])
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def takes_part(salt: str, source_id: int, *, coverage: float) -> bool:
    return draw(salt, "cover", source_id) < coverage


def arm_of(salt: str, source_id: int, *, share: float = 0.5, coverage: float = 1.0) -> Arm | None:
    """The arm of a source placed alone (one that joined after the start); None when it does not take part."""
    if not takes_part(salt, source_id, coverage=coverage):
        return None
    return Arm.TREATMENT if draw(salt, "arm", source_id) < share else Arm.CONTROL


def assign(units: Iterable[Unit], *, salt: str, share: float = 0.5, coverage: float = 1.0) -> dict[int, Arm]:
    """Place every taking-part unit in an arm, balanced within its stratum (see the module's steps)."""
    if not 0 < share < 1:
        raise ValueError("share must be strictly between 0 and 1")
    if not 0 < coverage <= 1:
        raise ValueError("coverage must be in (0, 1]")
    strata: dict[str, list[Unit]] = defaultdict(list)
    seen: set[int] = set()
    for unit in units:
        if unit.id in seen:
            raise ValueError(f"source {unit.id} is listed twice")
        seen.add(unit.id)
        if takes_part(salt, unit.id, coverage=coverage):
            strata[unit.stratum].append(unit)
    placed: dict[int, Arm] = {}
    for stratum, members in strata.items():
        members.sort(key=lambda u: (draw(salt, "arm", u.id), u.id))
        offset = draw(salt, "stratum", stratum)
        for i, unit in enumerate(members):
            dealt = math.floor((i + 1) * share + offset) > math.floor(i * share + offset)
            placed[unit.id] = Arm.TREATMENT if dealt else Arm.CONTROL
    return placed


def stratum_of(*, connector: str, mode: str, rate_per_s: float | None) -> str:
    """The default stratum: connector, mode and a traffic class (decades of events/s)."""
    if rate_per_s is None or rate_per_s <= 0:
        traffic = "quiet"
    elif rate_per_s < 0.1:
        traffic = "low"
    elif rate_per_s < 10:
        traffic = "medium"
    else:
        traffic = "high"
    return f"{connector}/{mode}/{traffic}"
