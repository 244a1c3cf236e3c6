"""How much a dispatch round may queue (pure): up to a bound, nothing while the queue is not keeping up."""

from __future__ import annotations

import pytest

from scheduling.queues import room_for


@pytest.mark.parametrize(
    ("depth", "oldest_age_s", "max_wait_s", "room"),
    [
        (0, None, 15.0, 200),  # empty
        (150, 3.0, 15.0, 50),  # keeping up: filled to the bound
        (250, 3.0, 15.0, 0),  # past the bound (work queued by others)
        (20, 15.0, 15.0, 0),  # the oldest waited half the claim: what is sent now would expire unrun
        (20, 60.0, None, 180),  # no wait bound: depth only
        (20, None, 15.0, 180),  # no stamp to read: depth only
    ],
)
def test_room(depth: int, oldest_age_s: float | None, max_wait_s: float | None, room: int) -> None:
    assert room_for(depth=depth, oldest_age_s=oldest_age_s, bound=200, max_wait_s=max_wait_s) == room
