"""When the monitor next judges a source (pure): as late as it can without changing a decision."""

from __future__ import annotations

import pytest

from engines.deadlines import Cadence, next_judgement
from engines.health import StreamHealth
from engines.hysteresis import HysteresisState, Phase
from engines.modes import Mode, Verdict

T0 = 1_000_000.0
CADENCE = Cadence(tick_s=1.0, dormant_s=5.0, active_s=5.0, idle_s=300.0)


def health(*, silent_s: float = 1.0, allowed_s: float = 15.0, **penalties: int) -> StreamHealth:
    score = 100 - sum(penalties.values())
    return StreamHealth(
        score=score,
        verdict=Verdict.GOOD if score >= 50 else Verdict.BAD,
        penalties={"silence": 0, "gaps": 0, "push_errors": 0, "delivery_rate": 0, **penalties},
        measures={"silence_s": silent_s, "allowed_silence_s": allowed_s},
    )


def state(mode: Mode = Mode.EVENT, **fields: object) -> HysteresisState:
    fields.setdefault("phase", Phase.DEGRADING if mode is Mode.HYBRID else None)
    return HysteresisState(mode=mode, since=T0 - 100, **fields)  # type: ignore[arg-type]


def at(
    h: StreamHealth, s: HysteresisState, *, switched: bool = False, moved: bool = False, window_s: float | None = None
) -> float:
    ends = None if window_s is None else T0 + window_s
    return (
        next_judgement(
            now=T0, cadence=CADENCE, health=h, state=s, switched=switched, moved=moved, validation_ends_at=ends
        )
        - T0
    )


def test_a_settled_idle_stream_is_judged_at_its_silence_deadline() -> None:
    # 1 s since the last event, 15 s allowed: silence starts counting in 14 s
    assert at(health(silent_s=1.0, allowed_s=15.0), state()) == pytest.approx(14.0)


def test_a_settled_idle_stream_with_a_far_silence_waits_the_idle_cap() -> None:
    assert at(health(silent_s=10.0, allowed_s=10_800.0), state()) == pytest.approx(300.0)


def test_the_idle_safety_net_is_spread_so_sources_judged_together_drift_apart() -> None:
    quiet, far = state(), health(silent_s=10.0, allowed_s=10_800.0)

    def idle_at(spread: float) -> float:
        return next_judgement(now=T0, cadence=CADENCE, health=far, state=quiet, switched=False, moved=False,
                              spread=spread) - T0  # fmt: skip

    # the spread brings the safety net up to a fifth earlier, never later
    assert idle_at(0.0) == pytest.approx(300.0)
    assert idle_at(0.5) == pytest.approx(270.0)
    assert 240.0 < idle_at(0.999) < 241.0
    # a nearer silence deadline still wins, and a stream that moved is still looked at after active_s
    assert next_judgement(now=T0, cadence=CADENCE, health=health(silent_s=1.0, allowed_s=15.0), state=quiet,
                          switched=False, moved=False, spread=0.9) - T0 == pytest.approx(14.0)  # fmt: skip
    assert next_judgement(now=T0, cadence=CADENCE, health=far, state=quiet, switched=False, moved=True,
                          spread=0.9) - T0 == pytest.approx(5.0)  # fmt: skip


def test_a_settled_stream_that_moved_is_looked_at_after_active_s() -> None:
    assert at(health(silent_s=0.2, allowed_s=60.0), state(), moved=True) == pytest.approx(5.0)


def test_a_sparse_stream_between_two_pushes_stays_settled_with_only_a_rate_penalty() -> None:
    # the delivery rate's penalty is capped below the verdict line: alone it never moves the machine
    assert at(health(silent_s=4.0, allowed_s=30.0, delivery_rate=40), state(), moved=True) == pytest.approx(5.0)


def test_never_sooner_than_a_tick() -> None:
    assert at(health(silent_s=14.9, allowed_s=15.0), state()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("h", "s", "switched"),
    [
        (health(gaps=10), state(), False),  # a penalty
        (health(), state(bad=1), False),  # a bad verdict being counted
        (health(), state(Mode.HYBRID, phase=Phase.RECOVERING, bad=1), False),  # a bad verdict while validating
        (health(), state(Mode.HYBRID), True),  # just switched to hybrid
        (health(), state(Mode.POLLING, good=2), False),  # a recovery being counted
        (health(), state(), True),  # just switched
    ],
)
def test_a_moving_source_is_judged_every_tick(h: StreamHealth, s: HysteresisState, switched: bool) -> None:
    assert at(h, s, switched=switched) == pytest.approx(1.0)


def test_polling_with_the_push_still_dead_is_dormant() -> None:
    assert at(health(silent_s=500.0, allowed_s=15.0, silence=100), state(Mode.POLLING)) == pytest.approx(5.0)


def test_cadence_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="tick_s"):
        Cadence(tick_s=10.0, dormant_s=5.0)


def test_hybrid_on_the_way_down_waits_for_its_poll_at_the_dormant_cadence() -> None:
    # its bad verdicts change nothing; the poll that catches up wakes it (engines.polling)
    bad = health(silent_s=500.0, allowed_s=15.0, silence=100)
    assert at(bad, state(Mode.HYBRID, bad=7)) == pytest.approx(5.0)
    assert at(health(), state(Mode.HYBRID)) == pytest.approx(5.0)


def test_validating_a_recovery_with_a_clean_stream_is_judged_when_something_can_change() -> None:
    recovering = state(Mode.HYBRID, phase=Phase.RECOVERING)
    # a push came: what it brought (gaps, refusals) is looked at after active_s, as in event mode
    assert at(health(silent_s=0.5, allowed_s=60.0), recovering, moved=True, window_s=20.0) == pytest.approx(5.0)
    # the window ends sooner than that: then (a poll that confirmed lets the machine go back to push)
    assert at(health(silent_s=0.5, allowed_s=60.0), recovering, moved=True, window_s=2.0) == pytest.approx(2.0)
    # silence would begin sooner still: then
    assert at(health(silent_s=58.0, allowed_s=60.0), recovering, window_s=20.0) == pytest.approx(2.0)
    # nothing moved, the window passed: waiting for a poll to confirm, which wakes the source
    assert at(health(silent_s=1.0, allowed_s=60.0), recovering, window_s=-5.0) == pytest.approx(5.0)
