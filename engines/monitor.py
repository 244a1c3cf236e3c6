"""StreamMonitor: judge a source's stream and let the hysteresis decide.

The decisions are pure (engines/health.py, engines/hysteresis.py); this
module turns a source's rows into their inputs (signals, policies; the
stored state is read by engines.source_ops.hysteresis_state) and writes the
rare outcomes one source at a time: a mode switch with its audit row, a
stream failure, the ask for a targeted gap-fill poll. engines/judge.py judges sources
with these (in batches, and one source or one tenant's by `monitor_source`
and `monitor_tenant`), and engines/deadlines.py says when each is next due
(docs/scheduling.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.utils import timezone
from prometheus_client import Counter, Histogram

from beastflow.redis_client import get_redis, key
from beastflow.tenancy import current_schema
from engines import flight, outbound
from engines.health import HealthPolicy, StreamHealth, StreamSignals
from engines.hysteresis import Decision, Transition, gap_fill_request
from engines.models import HealthSample, Source, StreamState
from engines.modes import Mode
from engines.switching import source_switch_mode
from scheduling.services import source_wake

log = structlog.get_logger(__name__)

TICKS = Counter("beastflow_monitor_evaluations_total", "Sources evaluated by the monitor", ["verdict"])
GAP_FILLS_ASKED = Counter(
    "beastflow_gap_fills_asked_total", "Gap-fill polls the monitor asked the polls dispatcher for"
)
TICK_SECONDS = Histogram(
    "beastflow_monitor_tick_seconds", "Time of one monitor pass (a claimer's run, or all of a tenant's sources)"
)

# A poll-found event counts as "missed by push" only when push had this long
# to deliver it: a poll racing a push that is merely in flight is not a miss.
MISS_GRACE_S = 2.0
SAMPLE_EVERY_S = 10.0
GAP_FILL_COOLDOWN_S = 5
# The same gap asked for again (the last poll could not fill it: the upstream
# has no such seqs either, say a push that failed on the sender's side) waits
# twice as long each time, up to this: a gap that cannot be filled must not
# cost a poll every few seconds for ever (at 1,000 tenants such gap fills were
# 364 of the 493 polls queued, sent around the dispatcher's backpressure).
GAP_FILL_MAX_COOLDOWN_S = 300
# How long the memory of a gap's tries is kept.
GAP_FILL_MEMORY_S = 3_600
# A gap fill is not sent by the monitor: it is asked for (a mark in Redis and
# the source's poll deadline made due), and the polls dispatcher sends it with
# the other due polls, within the queue's room and the tenants' fair shares.
# Sent around the dispatcher, gap fills once took a whole minute's polls at
# 1,000 tenants (338 of them, no scheduled poll). An ask the dispatcher has not
# taken within this long is dropped; the judgement after the cooldown asks again.
GAP_FILL_WANTED_S = GAP_FILL_MAX_COOLDOWN_S


def gap_fill_cooldown_s(tries: int) -> int:
    """Seconds before the same gap is asked for again after `tries` earlier asks (pure)."""
    return int(min(GAP_FILL_MAX_COOLDOWN_S, GAP_FILL_COOLDOWN_S * 2 ** min(tries, 16)))


RATE_BASELINE_ALPHA = 0.05


@dataclass(frozen=True)
class Window:
    delivery_rate: float | None
    baseline_rate: float | None
    push_errors: int
    push_total: int
    sample_due: bool


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def expected_interval(source: Source, stream: StreamState) -> float:
    """The learned rhythm, kept within a factor of what the source's config says."""
    configured = float(source.config.get("expected_interval_s", 5.0))
    learned = stream.expected_interval_s
    if learned is None:
        return configured
    return min(max(learned, configured / 4), configured * 4)


def health_policy(source: Source) -> HealthPolicy:
    return HealthPolicy.from_config(source.health or {})


def missed_pushes(source: Source, stream: StreamState, now: float) -> int | None:
    """What the latest poll of a source without seqs found push had missed, while that is recent.

    Only `rest` sources are audited this way (see docs/rest-connector.md); for
    the others None, and their health is judged as before. Recent: within two
    audit intervals or two of the longest poll intervals, whichever is longer,
    so a finding holds until a later poll can contradict it, not for ever.
    """
    if source.connector != "rest" or stream.polled_missed_at is None:
        return None
    poll = source.poll or {}
    recent_s = 2 * max(float(poll.get("audit_interval_s", 60.0)), float(poll.get("max_interval_s", 60.0)))
    if now - stream.polled_missed_at.timestamp() > recent_s:
        return None
    return stream.polled_missed


def signals_for(
    source: Source, stream: StreamState, window: Window, now: float, *, outage: tuple[float, float] | None = None
) -> StreamSignals:
    """`outage`: BeastFlow's own latest one (engines/watch.py), whose part of a silence is not counted."""
    # Push silence is judged on pushes only: in polling mode the polls keep
    # events arriving, which must not hide a stream that is still dead.
    signals = StreamSignals(
        now=now,
        last_event_at=_epoch(stream.last_push_at),
        last_heartbeat_at=_epoch(stream.last_heartbeat_at),
        expected_interval_s=expected_interval(source, stream),
        contiguous_seq=stream.contiguous_seq,
        highest_seq=stream.highest_seq,
        upstream_seq=stream.upstream_seq,
        push_errors=window.push_errors,
        push_total=window.push_total,
        delivery_rate=window.delivery_rate,
        baseline_rate=window.baseline_rate,
        watching_since=source.created_at.timestamp(),
        resumed_at=_epoch(source.resumed_at),
        missed_pushes=missed_pushes(source, stream, now),
        outage_from=outage[0] if outage else None,
        outage_until=outage[1] if outage else None,
    )
    # What this judgement is decided from, for failure recordings (engines/flight.py).
    flight.note(
        source_id=source.pk,
        now=now,
        signals=signals.as_dict(),
        mode=source.mode,
        state=source.hysteresis_state,
        config={"hysteresis": source.hysteresis or {}, "health": source.health or {}},
    )
    return signals


def _store(
    source: Source, decision: Decision, health: StreamHealth, signals: StreamSignals, evidence: dict[str, Any]
) -> bool:
    """Write the decision: the switch with its audit row, or the state. False when another writer came first.

    Compare-and-set on the state this tick read (unlocked): a hold an
    operator or a healing action wrote meanwhile wins, and the next tick
    decides from it.
    """
    if not decision.switched:
        return bool(
            Source.objects.filter(pk=source.pk, mode=source.mode, hysteresis_state=source.hysteresis_state).update(
                hysteresis_state=decision.state.to_dict(), health_score=health.score, verdict=health.verdict.value
            )
        )
    if not source_switch_mode(
        source=source,
        decision=decision,
        signals=evidence,
        extra={"health_score": health.score, "verdict": health.verdict.value},
        if_state=source.hysteresis_state,
    ):
        return False
    if decision.transition is Transition.DEGRADE:
        flight.mark_degraded(schema=current_schema(), source_id=source.pk, at=signals.now)
        # A degraded stream is a failure for RCA (silence, gaps or refused pushes).
        outbound.announce(
            outbound.StreamDegraded(
                source_id=source.pk, health=health.as_dict(), signals=signals.as_dict(), reason=decision.reason
            )
        )
    return True


def _maybe_gap_fill(source: Source, stream: StreamState) -> None:
    request = gap_fill_request(
        mode=Mode(source.mode),
        contiguous_seq=stream.contiguous_seq,
        highest_seq=stream.highest_seq,
        upstream_seq=stream.upstream_seq,
    )
    if request is None:
        return
    # One gap-fill poll in flight per source (the tick repeats faster than a
    # poll may take), and a gap asked for before waits longer each time.
    client = get_redis()
    lock, memory = key("gapfill", current_schema(), source.pk), key("gapfill-tries", current_schema(), source.pk)
    if client.exists(lock):
        return
    asked_after, asked_tries = client.hmget(memory, "after_seq", "tries")
    same_gap = asked_after is not None and asked_tries is not None and int(asked_after) == request.after_seq
    tries = int(asked_tries or 0) + 1 if same_gap else 0
    cooldown_s = gap_fill_cooldown_s(tries)
    if not client.set(lock, 1, nx=True, ex=cooldown_s):
        return
    with client.pipeline(transaction=False) as pipe:
        pipe.hset(memory, mapping={"after_seq": request.after_seq, "tries": tries})
        pipe.expire(memory, GAP_FILL_MEMORY_S)
        pipe.execute()
    log.info(
        "gap_fill_requested",
        source=source.pk,
        after_seq=request.after_seq,
        missing=request.missing,
        tries=tries,
        next_ask_in_s=cooldown_s,
    )
    outbound.announce(
        outbound.StreamGapFound(
            source_id=source.pk,
            after_seq=request.after_seq,
            missing=request.missing,
            signals={
                "contiguous_seq": stream.contiguous_seq,
                "highest_seq": stream.highest_seq,
                "upstream_seq": stream.upstream_seq,
            },
        )
    )
    # The mark first: a dispatcher that sees the wake finds it. The wake is in the
    # batch's transaction; a batch rolled back loses it, and the ask is made again
    # when its cooldown ends (5 s the first time).
    client.set(_wanted_key(current_schema(), source.pk), request.after_seq, ex=GAP_FILL_WANTED_S)
    source_wake(source.pk, judge=False, poll=True)
    GAP_FILLS_ASKED.inc()


def _wanted_key(schema: str, source_id: int) -> str:
    return key("gapfill-wanted", schema, source_id)


def gap_fills_take(schema: str, source_ids: Sequence[int]) -> set[int]:
    """Which of these sources have a gap fill asked for (engines.dispatch sends them); each ask is taken once."""
    if not source_ids:
        return set()
    with get_redis().pipeline(transaction=False) as pipe:
        for source_id in source_ids:
            pipe.getdel(_wanted_key(schema, source_id))
        taken = pipe.execute()
    return {source_id for source_id, value in zip(source_ids, taken, strict=True) if value is not None}


def prune_samples() -> int:
    cutoff = timezone.now() - timedelta(hours=settings.BEASTFLOW_HEALTH_RETENTION_H)
    deleted, _ = HealthSample.objects.filter(at__lt=cutoff).delete()
    return deleted
