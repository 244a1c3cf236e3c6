"""Predictive health: will this stream degrade soon? Pure functions over a source's recent judgements.

Two detectors, each cheap enough to update at every judgement from a few
floats kept with the monitor's memory:

- **trend**: the health score's slope, fitted by exponentially weighted least
  squares over the recent judgements (older ones fade with `half_life_s`).
  Falling at this slope, the score crosses the degraded threshold in
  `eta_s`; within `horizon_s` (and with enough judgements behind the fit),
  that is a prediction.
- **anomaly**: the delivery rate's z-score against its own exponentially
  weighted mean and variance. A rate far below normal for `anomaly_runs`
  judgements in a row is a prediction too. Seasonality: a stream with a
  daily pattern keeps one baseline per hour of the day, used once that hour
  has seen `seasonal_min_samples` judgements (until then, the overall one),
  so a nightly lull is not taken for an outage.

Neither detector switches anything: a prediction is raised as a failure of
its own kind (`predicted_degradation`) for RCA and the operator, ahead of the
hysteresis, which still decides the mode from what happened.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class PredictionPolicy:
    degraded_score: float = 60.0  # the score the monitor calls degraded
    horizon_s: float = 600.0  # predict a crossing this far ahead at most
    half_life_s: float = 120.0  # how fast old judgements fade from the trend
    min_points: float = 12.0  # weighted judgements behind a trend before it is trusted (a minute at 5 s)
    min_drop_per_min: float = 0.5  # slower falls are noise
    alpha: float = 0.1  # EWMA weight of a new delivery rate
    z_threshold: float = -3.0
    anomaly_runs: int = 3
    min_std_fraction: float = 0.1  # the std never counts below this share of the mean (a steady stream is not fragile)
    seasonal_min_samples: int = 30


@dataclass(frozen=True)
class Trend:
    """Exponentially weighted sums for a least-squares line through (t, score), t relative to `origin`."""

    origin: float = 0.0
    at: float = 0.0
    w: float = 0.0
    t: float = 0.0
    s: float = 0.0
    tt: float = 0.0
    ts: float = 0.0

    def add(self, at: float, score: float, half_life_s: float) -> Trend:
        if self.w == 0.0:
            return Trend(origin=at, at=at, w=1.0, t=0.0, s=score, tt=0.0, ts=0.0)
        decay = 0.5 ** (max(0.0, at - self.at) / half_life_s)
        # Re-centred on the new point (x = 0) at every step: the sums stay small
        # and exact over days, instead of growing with the time since the first point.
        d = at - self.origin
        t = self.t - self.w * d
        tt = self.tt - 2 * d * self.t + self.w * d * d
        ts = self.ts - d * self.s
        return Trend(
            origin=at,
            at=at,
            w=self.w * decay + 1.0,
            t=t * decay,
            s=self.s * decay + score,
            tt=tt * decay,
            ts=ts * decay,
        )

    def slope_per_s(self) -> float | None:
        denominator = self.w * self.tt - self.t * self.t
        if self.w < 2 or denominator <= 1e-9:
            return None
        return (self.w * self.ts - self.t * self.s) / denominator

    def level(self) -> float | None:
        """The fitted score now (at `at`)."""
        slope = self.slope_per_s()
        if slope is None:
            return None
        intercept = (self.s - slope * self.t) / self.w
        return intercept + slope * (self.at - self.origin)


@dataclass(frozen=True)
class Ewma:
    mean: float | None = None
    var: float = 0.0
    n: int = 0

    def add(self, x: float, alpha: float) -> Ewma:
        if self.mean is None:
            return Ewma(mean=x, var=0.0, n=1)
        diff = x - self.mean
        mean = self.mean + alpha * diff
        var = (1 - alpha) * (self.var + alpha * diff * diff)
        return Ewma(mean=mean, var=var, n=self.n + 1)

    def z(self, x: float, min_std_fraction: float) -> float | None:
        if self.mean is None or self.n < 2:
            return None
        std = max(math.sqrt(self.var), abs(self.mean) * min_std_fraction, 1e-9)
        return (x - self.mean) / std


@dataclass(frozen=True)
class Memory:
    """What the predictor keeps per source between judgements."""

    trend: Trend = Trend()
    rate: Ewma = Ewma()
    hourly: tuple[Ewma, ...] = tuple(Ewma() for _ in range(24))
    low_runs: int = 0


@dataclass(frozen=True)
class Prediction:
    detector: str  # "trend" | "anomaly"
    eta_s: float | None  # when the score would cross the threshold (trend), None for an anomaly
    slope_per_min: float | None
    z: float | None
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {
            "detector": self.detector,
            "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
            "slope_per_min": None if self.slope_per_min is None else round(self.slope_per_min, 3),
            "z": None if self.z is None else round(self.z, 2),
            "reason": self.reason,
        }


def observe(
    memory: Memory,
    *,
    at: float,
    score: float,
    rate: float | None,
    policy: PredictionPolicy,
) -> tuple[Memory, Prediction | None]:
    """Add one judgement (epoch `at`, its score, the delivery rate measured) and predict."""
    trend = memory.trend.add(at, score, policy.half_life_s)
    hour = int(at // 3600) % 24
    seasonal = memory.hourly[hour]
    baseline = seasonal if seasonal.n >= policy.seasonal_min_samples else memory.rate
    z = None if rate is None else baseline.z(rate, policy.min_std_fraction)
    low = z is not None and z <= policy.z_threshold
    runs = memory.low_runs + 1 if low else 0
    if rate is not None and not low:
        # An anomalous rate does not teach the baseline: an outage must not become normal.
        hourly = list(memory.hourly)
        hourly[hour] = seasonal.add(rate, policy.alpha)
        updated = Memory(trend=trend, rate=memory.rate.add(rate, policy.alpha), hourly=tuple(hourly), low_runs=runs)
    else:
        updated = replace(memory, trend=trend, low_runs=runs)
    if score <= policy.degraded_score:
        return updated, None  # already degraded: the hysteresis has it, nothing to predict
    slope = trend.slope_per_s()
    if slope is not None and trend.w >= policy.min_points and -slope * 60 >= policy.min_drop_per_min:
        level = trend.level()
        assert level is not None
        eta = max(0.0, (level - policy.degraded_score) / -slope)
        if eta <= policy.horizon_s:
            return updated, Prediction(
                "trend",
                eta,
                slope * 60,
                z,
                f"health falling {-slope * 60:.1f}/min: degraded in about {eta / 60:.1f} min at this trend",
            )
    if runs >= policy.anomaly_runs and z is not None:
        return updated, Prediction(
            "anomaly",
            None,
            None if slope is None else slope * 60,
            z,
            f"delivery rate {z:.1f} standard deviations below normal for {runs} judgements",
        )
    return updated, None
