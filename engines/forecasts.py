"""Predictive health at every judgement: the predictor's memory in Redis, predictions raised as failures.

Called by the batched judge (engines/judge.py) once per batch, after its
writes: one pipelined read and one pipelined write of the predictors' state
(a small JSON blob per source, `forecast:<schema>:<id>`), then a
`predicted_degradation` failure per source predicted to degrade
(engines/prediction.py). Only sources in event mode are watched: once a
source is in hybrid or polling, the hysteresis is already acting on it.

The failure folds repeats while open (healing's fingerprint) and is closed
by healing's recovery sweep once predictions stop. Like the monitor's
memory, the state is a hint: after a Redis flush the predictors relearn.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import structlog
from prometheus_client import Counter

from beastflow.redis_client import get_redis, key
from engines import outbound
from engines.prediction import Ewma, Memory, PredictionPolicy, Trend, observe

log = structlog.get_logger(__name__)

PREDICTIONS = Counter("beastflow_predictions_total", "Sources predicted to degrade, by detector", ["detector"])
STATE_TTL_S = 7 * 86400  # the hourly baselines need days of history
POLICY = PredictionPolicy()


def forecast_key(schema: str, source_id: int) -> str:
    return key("forecast", schema, source_id)


def memory_dump(memory: Memory) -> str:
    return json.dumps(
        {
            "trend": asdict(memory.trend),
            "rate": asdict(memory.rate),
            "hourly": [[e.mean, e.var, e.n] for e in memory.hourly],
            "low_runs": memory.low_runs,
        },
        separators=(",", ":"),
    )


def memory_load(raw: bytes | str | None) -> Memory:
    if not raw:
        return Memory()
    try:
        data: dict[str, Any] = json.loads(raw)
        hourly = tuple(Ewma(mean=m, var=float(v), n=int(n)) for m, v, n in data["hourly"])
        if len(hourly) != 24:
            return Memory()
        return Memory(
            trend=Trend(**data["trend"]), rate=Ewma(**data["rate"]), hourly=hourly, low_runs=int(data["low_runs"])
        )
    except (ValueError, TypeError, KeyError):
        return Memory()  # a stale or foreign shape: start over


def forecasts_observe(schema: str, judged: Sequence[tuple[int, str, float, float | None]], *, now: float) -> int:
    """Feed this batch's judgements (source id, mode, score, delivery rate) to the predictors; returns predictions."""
    watched = [row for row in judged if row[1] == "event"]
    if not watched:
        return 0
    client = get_redis()
    with client.pipeline(transaction=False) as pipe:
        for source_id, *_ in watched:
            pipe.get(forecast_key(schema, source_id))
        raws = pipe.execute()
    predicted: list[tuple[int, dict[str, object]]] = []
    with client.pipeline(transaction=False) as pipe:
        for (source_id, _, score, rate), raw in zip(watched, raws, strict=True):
            memory, prediction = observe(memory_load(raw), at=now, score=float(score), rate=rate, policy=POLICY)
            pipe.set(forecast_key(schema, source_id), memory_dump(memory), ex=STATE_TTL_S)
            if prediction is not None:
                predicted.append((source_id, prediction.as_dict()))
        pipe.execute()
    if predicted:
        for source_id, detail in predicted:
            PREDICTIONS.labels(str(detail["detector"])).inc()
            log.info("degradation_predicted", source=source_id, **detail)
            outbound.announce(
                outbound.FailureObserved(kind="predicted_degradation", source_id=source_id, identity={}, detail=detail)
            )
    return len(predicted)
