"""StreamMonitor scoring: how healthy is a source's push stream right now?

Pure Python over plain data: the monitor gathers `StreamSignals` (from the
source row and the Redis counters), calls `score_stream`, and stores the
resulting `StreamHealth` (score, verdict and the reasons) on the source and in
the audit row of any mode switch it causes. The verdict feeds
`engines.hysteresis.decide`; a single verdict never switches a mode.

Each signal becomes a *penalty* (0 = fine, 100 = the stream is broken on this
count alone) and the score is `100 - sum(penalties)`, floored at 0. Adding
penalties, rather than taking the worst one, lets two half-problems together
turn the verdict bad, while every penalty stays visible in the audit row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from engines.modes import Verdict

# A gap a targeted poll can fill without a mode switch (see
# `engines.hysteresis.gap_fill_request`); bigger gaps are a broken stream.
SMALL_GAP_SEQ = 100


@dataclass(frozen=True)
class StreamSignals:
    """What the monitor knows about one source's push stream at `now`.

    Times are epoch seconds. `None` means "not known", which never counts
    against the stream: no evidence is not bad evidence.
    """

    now: float
    last_event_at: float | None
    last_heartbeat_at: float | None
    expected_interval_s: float  # learned with `update_expected_interval`
    contiguous_seq: int | None = None  # every seq up to here has been received
    highest_seq: int | None = None  # highest seq received by push or poll
    upstream_seq: int | None = None  # the upstream's newest seq, from its heartbeats
    push_errors: int = 0  # failed push deliveries in the monitor's window
    push_total: int = 0  # all push deliveries in the window, failed ones included
    delivery_rate: float | None = None  # events/s over the window
    baseline_rate: float | None = None  # events/s, the long-run average
    heartbeat_interval_s: float | None = None  # the upstream's heartbeat period, if it sends any
    watching_since: float | None = None  # when monitoring started: silence before the first event
    # When the source was last resumed: the monitor left it alone while it was
    # paused, so silence counts from here at the earliest.
    resumed_at: float | None = None
    # BeastFlow's own latest outage (engines/watch.py), from..until: the part
    # of a silence inside it is BeastFlow's, not the upstream's, and not counted.
    outage_from: float | None = None
    outage_until: float | None = None
    # Records the latest poll found that push had missed (None: no recent poll
    # says). For an upstream without seqs this is what gaps are for one with.
    missed_pushes: int | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        """JSON-ready, for the `signals` of a mode-switch audit row and the flight recorder.

        Every field is a number or None, so a shallow copy is the same as
        `dataclasses.asdict`, which deep-copies field by field: it was a tenth
        of an idle judgement's Python time (the flight recorder notes every one).
        """
        return {name: getattr(self, name) for name in _SIGNAL_FIELDS}


_SIGNAL_FIELDS = tuple(f.name for f in fields(StreamSignals))


@dataclass(frozen=True)
class HealthPolicy:
    """Thresholds of the scoring, with their defaults.

    Silence: a stream is allowed `silence_tolerance` times its rhythm (the
    larger of the expected inter-arrival and the heartbeat period), never less
    than `min_silence_s`; past that the penalty grows linearly and reaches 100
    at `silence_dead_factor` times the allowance.

    Gaps: up to `small_gap_seq` missing seqs cost at most `small_gap_penalty`
    (a targeted poll fills them); more is a broken stream (100).

    Push errors: judged from `min_push_samples` deliveries on; no penalty up to
    `ok_error_rate`, 100 at `dead_error_rate`.

    Delivery rate: judged when the baseline is at least `min_baseline_rate`;
    no penalty down to `ok_rate_ratio` of the baseline, `rate_max_penalty` at
    zero. Capped below the verdict line because traffic legitimately ebbs:
    a slow stream alone is not a broken one.

    Missed pushes: any record the latest poll found that push had missed
    turns the verdict bad on its own (a penalty of `101 - bad_below`), and
    the penalty grows to 100 at `dead_missed_pushes`: an upstream without
    seqs shows its losses only this way, and only after the fact.

    The verdict is bad when the score is below `bad_below`.
    """

    silence_tolerance: float = 3.0
    silence_dead_factor: float = 2.0
    min_silence_s: float = 5.0
    small_gap_seq: int = SMALL_GAP_SEQ
    small_gap_penalty: int = 20
    min_push_samples: int = 10
    ok_error_rate: float = 0.01
    dead_error_rate: float = 0.2
    min_baseline_rate: float = 0.01
    ok_rate_ratio: float = 0.5
    rate_max_penalty: int = 40
    dead_missed_pushes: int = 10
    bad_below: int = 50

    def __post_init__(self) -> None:
        if self.silence_tolerance <= 0 or self.silence_dead_factor <= 1 or self.min_silence_s < 0:
            raise ValueError("silence_tolerance > 0, silence_dead_factor > 1 and min_silence_s >= 0 are required")
        if self.small_gap_seq < 0 or not 0 <= self.small_gap_penalty <= 100:
            raise ValueError("small_gap_seq >= 0 and 0 <= small_gap_penalty <= 100 are required")
        if self.min_push_samples < 1 or not 0 <= self.ok_error_rate < self.dead_error_rate <= 1:
            raise ValueError("min_push_samples >= 1 and 0 <= ok_error_rate < dead_error_rate <= 1 are required")
        if self.min_baseline_rate <= 0 or not 0 < self.ok_rate_ratio <= 1 or not 0 <= self.rate_max_penalty <= 100:
            raise ValueError("min_baseline_rate > 0, 0 < ok_rate_ratio <= 1, 0 <= rate_max_penalty <= 100 are required")
        if not 0 < self.bad_below <= 100:
            raise ValueError("0 < bad_below <= 100 is required")
        if self.dead_missed_pushes < 1:
            raise ValueError("dead_missed_pushes >= 1 is required")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> HealthPolicy:
        """A source's stored health config (the keys it may set); missing keys take the defaults."""
        d = cls()
        return cls(
            silence_tolerance=float(config.get("silence_tolerance", d.silence_tolerance)),
            min_silence_s=float(config.get("min_silence_s", d.min_silence_s)),
            bad_below=int(config.get("bad_below", d.bad_below)),
        )


@dataclass(frozen=True)
class StreamHealth:
    """The monitor's judgement: a score, a verdict and why.

    `penalties` and `reasons` are keyed by component (`silence`, `gaps`,
    `push_errors`, `delivery_rate`, and `missed_pushes` where polls audit the
    push); `measures` holds the numbers behind them
    (only those that could be measured). Treat the dicts as read-only.
    """

    score: int
    verdict: Verdict
    penalties: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    measures: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready, for the source's health and the audit trail."""
        return {
            "score": self.score,
            "verdict": self.verdict.value,
            "penalties": dict(self.penalties),
            "reasons": dict(self.reasons),
            "measures": dict(self.measures),
        }


def silent(health: StreamHealth) -> bool:
    """The verdict's worst penalty is silence: the push went quiet (not refused pushes or gaps)."""
    penalties = health.penalties
    return bool(penalties) and penalties.get("silence", 0) > 0 and penalties["silence"] == max(penalties.values())


def update_expected_interval(
    previous: float | None,
    observed_gap_s: float,
    *,
    alpha: float = 0.2,
    floor_s: float = 1.0,
    ceiling_s: float = 3600.0,
    outlier_factor: float = 10.0,
) -> float:
    """Learn a stream's expected inter-arrival time from one observed gap.

    Feed it the gap between two deliveries (not between events of one batch,
    which arrive together). Steps:

    1. Ignore a gap that is not a finite number >= 0 (clock skew, out-of-order
       delivery): keep `previous` (or the floor when there is none yet).
    2. Clamp the gap to `outlier_factor` times `previous`: an outage is not
       the stream's rhythm (the silence check judges it), yet a rhythm that
       really slows down is still learned within a few deliveries.
    3. EWMA: `alpha * gap + (1 - alpha) * previous`; the first gap is taken
       as it is.
    4. Clamp to [`floor_s`, `ceiling_s`]: a burst must not make a few
       milliseconds of quiet look like silence, and no stream is expected to
       be quieter than the ceiling.
    """
    if not 0 < alpha <= 1 or not 0 < floor_s <= ceiling_s or outlier_factor < 1:
        raise ValueError("0 < alpha <= 1, 0 < floor_s <= ceiling_s and outlier_factor >= 1 are required")
    if not math.isfinite(observed_gap_s) or observed_gap_s < 0:
        return floor_s if previous is None else _clamp(previous, floor_s, ceiling_s)
    if previous is None:
        learned = observed_gap_s
    else:
        gap = min(observed_gap_s, previous * outlier_factor)
        learned = alpha * gap + (1 - alpha) * previous
    return _clamp(learned, floor_s, ceiling_s)


def seq_gap(contiguous_seq: int | None, highest_seq: int | None, upstream_seq: int | None) -> int:
    """How many seqs are missing after the contiguous watermark (0 when unknown).

    The larger of the hole below the highest seq received and the distance to
    the upstream's head announced by its heartbeats.
    """
    if contiguous_seq is None:
        return 0  # nothing contiguous yet: we cannot tell a hole from a start
    behind = [seq - contiguous_seq for seq in (highest_seq, upstream_seq) if seq is not None]
    return max([0, *behind])


def score_stream(signals: StreamSignals, policy: HealthPolicy | None = None) -> StreamHealth:
    """Score a push stream 0..100 and judge it good or bad.

    Steps:

    1. Silence: time since the last event or heartbeat (or since watching
       started, if neither came yet) against `silence_tolerance` times
       max(expected interval, heartbeat period), at least `min_silence_s`.
    2. Gaps: seqs missing after `contiguous_seq`, against the highest seq
       received and the upstream's head (`seq_gap`).
    3. Push errors: failed / total deliveries in the window.
    4. Delivery rate: the window's rate against the baseline.
    5. Missed pushes (when known): records the latest poll found that push had missed.
    6. Score = 100 - sum of the penalties (floored at 0); the verdict is bad
       below `policy.bad_below`.
    """
    policy = policy or HealthPolicy()
    penalties: dict[str, int] = {}
    reasons: dict[str, str] = {}
    measures: dict[str, float] = {}
    for name, judge in (
        ("silence", _silence),
        ("gaps", _gaps),
        ("push_errors", _push_errors),
        ("delivery_rate", _delivery_rate),
        ("missed_pushes", _missed_pushes),
    ):
        if name == "missed_pushes" and signals.missed_pushes is None:
            continue  # judged only where polls audit the push (no seqs upstream)
        penalty, reason, measured = judge(signals, policy)
        penalties[name] = penalty
        reasons[name] = reason
        measures.update(measured)
    score = max(0, 100 - sum(penalties.values()))
    verdict = Verdict.GOOD if score >= policy.bad_below else Verdict.BAD
    return StreamHealth(score=score, verdict=verdict, penalties=penalties, reasons=reasons, measures=measures)


_Judgement = tuple[int, str, dict[str, float]]


def _silence(signals: StreamSignals, policy: HealthPolicy) -> _Judgement:
    heard = [t for t in (signals.last_event_at, signals.last_heartbeat_at) if t is not None]
    last_seen = max(heard) if heard else signals.watching_since
    if signals.resumed_at is not None and (last_seen is None or signals.resumed_at > last_seen):
        last_seen = signals.resumed_at
    if last_seen is None:
        return 0, "nothing heard and not watching yet", {}
    own = own_outage_within(last_seen, signals.now, signals.outage_from, signals.outage_until)
    silence = max(0.0, signals.now - last_seen - own)
    rhythm = max(signals.expected_interval_s, signals.heartbeat_interval_s or 0.0)
    allowed = max(policy.min_silence_s, policy.silence_tolerance * rhythm)
    penalty = _percent(_ramp(silence, allowed, allowed * policy.silence_dead_factor))
    if last_seen == signals.resumed_at:
        what = "since it was resumed, nothing heard since"
    elif heard:
        what = "since the last event or heartbeat"
    else:
        what = "since watching started, nothing heard"
    reason = f"{silence:.1f}s {what}, {allowed:.1f}s allowed ({rhythm:.1f}s rhythm)"
    if own > 0:
        reason += f"; {own:.1f}s of BeastFlow's own outage not counted"
    return penalty, reason, {"silence_s": silence, "allowed_silence_s": allowed}


def own_outage_within(start: float, end: float, outage_from: float | None, outage_until: float | None) -> float:
    """Seconds of the outage [outage_from, outage_until] inside [start, end] (pure)."""
    if outage_from is None or outage_until is None:
        return 0.0
    return max(0.0, min(end, outage_until) - max(start, outage_from))


def _gaps(signals: StreamSignals, policy: HealthPolicy) -> _Judgement:
    if signals.contiguous_seq is None:
        return 0, "no seq received yet", {}
    gap = seq_gap(signals.contiguous_seq, signals.highest_seq, signals.upstream_seq)
    if gap == 0:
        return 0, f"contiguous up to seq {signals.contiguous_seq}", {"gap": 0.0}
    if gap <= policy.small_gap_seq:
        penalty = round(policy.small_gap_penalty * gap / max(1, policy.small_gap_seq))
        reason = f"{gap} seqs missing after {signals.contiguous_seq}: small, a targeted poll fills it"
    else:
        penalty = 100
        reason = f"{gap} seqs missing after {signals.contiguous_seq}: more than {policy.small_gap_seq}"
    return penalty, reason, {"gap": float(gap)}


def _push_errors(signals: StreamSignals, policy: HealthPolicy) -> _Judgement:
    if signals.push_total < policy.min_push_samples:
        return 0, f"{signals.push_total} pushes in the window: too few to judge", {}
    # Counters live in Redis and may be reset between reads: never over 100%.
    rate = min(1.0, max(0, signals.push_errors) / signals.push_total)
    penalty = _percent(_ramp(rate, policy.ok_error_rate, policy.dead_error_rate))
    reason = f"{signals.push_errors}/{signals.push_total} pushes failed ({rate:.0%})"
    return penalty, reason, {"error_rate": rate}


def _delivery_rate(signals: StreamSignals, policy: HealthPolicy) -> _Judgement:
    rate, baseline = signals.delivery_rate, signals.baseline_rate
    if rate is None or baseline is None or baseline < policy.min_baseline_rate:
        return 0, "no baseline to compare with yet", {}
    ratio = max(0.0, rate) / baseline
    shortfall = _ramp(policy.ok_rate_ratio - ratio, 0.0, policy.ok_rate_ratio)
    penalty = round(policy.rate_max_penalty * shortfall)
    reason = f"{rate:.2f}/s against a {baseline:.2f}/s baseline ({ratio:.0%})"
    return penalty, reason, {"rate_ratio": ratio}


def _missed_pushes(signals: StreamSignals, policy: HealthPolicy) -> _Judgement:
    missed = signals.missed_pushes
    if missed is None or missed <= 0:
        return 0, "the latest poll found nothing push had missed", {"missed_pushes": 0.0}
    # The least penalty that makes the verdict bad, whatever `bad_below` is set to.
    floor = 101 - policy.bad_below
    share = _ramp(missed, 1, policy.dead_missed_pushes) if policy.dead_missed_pushes > 1 else 1.0
    penalty = min(100, round(floor + (100 - floor) * share))
    reason = f"the latest poll found {missed} record(s) push had missed"
    return penalty, reason, {"missed_pushes": float(missed)}


def _ramp(value: float, start: float, end: float) -> float:
    """0 up to `start`, 1 from `end` on, linear in between."""
    if value <= start:
        return 0.0
    if value >= end:
        return 1.0
    return (value - start) / (end - start)


def _percent(fraction: float) -> int:
    return round(100 * fraction)


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))
