"""Predictive health (engines/prediction.py): trend and anomaly detectors on simulated judgement series, no database.

The series are what the monitor would see: a judgement every 5 s with the
stream's health score and the delivery rate measured since the previous one
(Poisson arrivals from a seeded generator). Lead times and false alarms
are printed (pytest -s) and asserted against generous bounds.
"""

from __future__ import annotations

import math
import random

from engines.prediction import Ewma, Memory, PredictionPolicy, Trend, observe

STEP_S = 5.0
POLICY = PredictionPolicy()


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method is fine for the small means used here; a normal approximation above.
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def test_the_trend_fits_a_line_and_forgets_old_points() -> None:
    trend = Trend()
    for i in range(20):
        trend = trend.add(1000.0 + i * STEP_S, 100.0 - 0.1 * i * STEP_S, half_life_s=120.0)
    slope = trend.slope_per_s()
    assert slope is not None and abs(slope + 0.1) < 1e-9
    level = trend.level()
    assert level is not None and abs(level - (100.0 - 0.1 * 19 * STEP_S)) < 1e-6
    assert Trend().add(0.0, 50.0, 120.0).slope_per_s() is None  # one point is no line


def test_the_ewma_learns_mean_and_spread() -> None:
    ewma = Ewma()
    for x in [10.0, 12.0, 8.0, 11.0, 9.0] * 40:
        ewma = ewma.add(x, 0.1)
    assert ewma.mean is not None and abs(ewma.mean - 10.0) < 0.5
    z = ewma.z(2.0, 0.1)
    assert z is not None and z < -3


def test_a_falling_score_is_predicted_minutes_before_it_is_degraded() -> None:
    # given: a healthy stream whose score then falls 4 points a minute
    memory, predictions, crossed = Memory(), [], None
    t0 = 1_700_000_000.0
    for i in range(400):
        at = t0 + i * STEP_S
        score = 100.0 if i < 100 else 100.0 - 4.0 * (i - 100) * STEP_S / 60
        memory, prediction = observe(memory, at=at, score=score, rate=10.0, policy=POLICY)
        if prediction is not None and crossed is None:
            predictions.append((at, prediction))
        if score <= POLICY.degraded_score and crossed is None:
            crossed = at
    # then: predicted minutes before the crossing; the eta starts long (the fit still
    # remembers the flat part) and closes in on the truth as the fall goes on
    assert predictions and crossed is not None
    (first_at, first), (last_at, last) = predictions[0], predictions[-1]
    lead = crossed - first_at
    print(f"\ntrend: predicted {lead / 60:.1f} min before the score reached {POLICY.degraded_score}")
    assert {p.detector for _, p in predictions} == {"trend"}
    assert 120 <= lead <= POLICY.horizon_s + STEP_S
    assert first.eta_s is not None and lead <= first.eta_s <= 2 * lead
    assert last.eta_s is not None and abs(last.eta_s - (crossed - last_at)) < 60


def test_a_collapsing_delivery_rate_is_an_anomaly_within_three_judgements() -> None:
    rng = random.Random(7)
    memory = Memory()
    t0 = 1_700_000_000.0
    fired_at = None
    for i in range(300):
        mean_per_step = 50.0 if i < 250 else 5.0
        rate = _poisson(rng, mean_per_step) / STEP_S
        memory, prediction = observe(memory, at=t0 + i * STEP_S, score=100.0, rate=rate, policy=POLICY)
        if prediction is not None:
            assert i >= 250, f"false alarm at judgement {i}: {prediction}"
            fired_at = i
            assert prediction.detector == "anomaly" and prediction.z is not None and prediction.z <= -3
            break
    assert fired_at is not None and fired_at - 250 + 1 <= POLICY.anomaly_runs


def test_a_healthy_stream_raises_few_false_alarms_per_source_hour() -> None:
    # given: 20 sources x 6 hours of healthy Poisson streams (1 to 20 events/s) with a jittering score
    rng = random.Random(42)
    hours, alarms = 6, 0
    for source in range(20):
        mean_per_step = (1 + source) * STEP_S
        memory = Memory()
        t0 = 1_700_000_000.0
        for i in range(int(hours * 3600 / STEP_S)):
            rate = _poisson(rng, mean_per_step) / STEP_S
            score = min(100.0, 96.0 + rng.gauss(0, 2))
            memory, prediction = observe(memory, at=t0 + i * STEP_S, score=score, rate=rate, policy=POLICY)
            alarms += prediction is not None
    per_source_hour = alarms / (20 * hours)
    print(f"\nhealthy streams: {alarms} alarms in {20 * hours} source-hours ({per_source_hour:.3f} per source-hour)")
    assert per_source_hour <= 0.05


def test_a_daily_lull_is_not_an_anomaly_once_each_hour_has_its_baseline() -> None:
    # given: a stream that runs at a fifth of its day rate from midnight to 6 UTC, for three days
    def run(policy: PredictionPolicy) -> int:
        rng = random.Random(3)
        memory, alarms = Memory(), 0
        t0 = 1_700_006_400.0 - (1_700_006_400 % 86400)  # a midnight, UTC
        for i in range(int(3 * 86400 / 60)):  # a judgement a minute
            at = t0 + i * 60
            night = (at % 86400) < 6 * 3600
            rate = _poisson(rng, (4.0 if night else 20.0) * 60) / 60
            memory, prediction = observe(memory, at=at, score=100.0, rate=rate, policy=policy)
            if at - t0 >= 2 * 86400:  # the third day: every hour has seen two days
                alarms += prediction is not None
        return alarms

    seasonal = run(PredictionPolicy(seasonal_min_samples=30))
    flat = run(PredictionPolicy(seasonal_min_samples=10**9))
    print(f"\ndaily pattern, third day: {seasonal} alarms with hourly baselines, {flat} without")
    assert seasonal == 0
    assert flat > 0  # the lull does look like an outage to a single baseline
