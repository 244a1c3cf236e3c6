"""Healing: choose a strategy for an analysed failure, run it or ask for approval, verify it, learn.

Steps for one failure (healing.queue calls `failure_heal` after RCA):

1. The strategies that fit the category and the situation, minus those that
   already failed for this failure (healing.strategies.candidates).
2. While automatic attempts remain, Thompson-sample among the low-risk ones
   (healing.bandit over StrategyStats) and run it at once.
3. Otherwise sample among the risky ones and ask an operator
   (`awaiting_approval`, escalated on a timeout): nothing risky runs before
   an approval.
4. Later, `actions_verify` judges each running action: did the failure
   resolve (health recovered) within the strategy's window? The outcome
   goes into the strategy's stats, and a failed attempt puts the failure
   back in the queue for the next strategy. A push-stream failure is only
   proven over in event mode: while the hysteresis holds its source away
   from push (a flap hold, a grown dwell) the judgement is deferred to when
   the source could be back, at most one whole hold past the window.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from engines.hysteresis import HysteresisPolicy, push_allowed_at
from engines.models import Source
from engines.source_ops import hysteresis_state
from healing import metrics
from healing.actions import ACTIONS
from healing.bandit import Arm, choose
from healing.models import (
    FailureRecord,
    FailureStatus,
    HealingAction,
    HealingEvent,
    HealingEventKind,
    HealingStatus,
    RCAResult,
    StrategyStats,
)
from healing.recovery import needs_event_mode, quiet_s
from healing.services import healing_action_request, own_strategy_handler
from healing.strategies import BY_NAME, MAX_AUTOMATIC_ATTEMPTS, Strategy, candidates

log = structlog.get_logger(__name__)

AUTOMATIC = "healing (automatic, low risk)"
# A `contained` strategy is judged by no new occurrence after this grace.
CONTAINED_GRACE_S = 5.0
# After the soonest return to push: monitor and healing ticks, the validation's confirming poll.
DEFER_SLACK_S = 30.0
_rng = random.Random()


def seed(value: int) -> None:
    """Tests and the benchmark make the bandit's draws reproducible."""
    _rng.seed(value)


# Priors over the strategies of a category, registered by an app above healing
# (strategies.apps: the other tenants' pooled outcomes). Given the category and
# this tenant's own counts, a provider returns pseudo-counts per strategy.
# Empty, each tenant learns alone from a flat prior.
PriorProvider = Callable[[str, Mapping[str, tuple[int, int]]], Mapping[str, tuple[float, float]]]
PRIORS: list[PriorProvider] = []


def arms(category: str) -> dict[str, Arm]:
    rows = StrategyStats.objects.filter(category=category).values_list("strategy", "successes", "failures")
    own = {name: (successes, failures) for name, successes, failures in rows}
    priors: dict[str, tuple[float, float]] = {}
    for provider in PRIORS:
        try:
            priors.update(provider(category, own))
        except Exception:  # a prior is advice: without it the tenant's own outcomes still choose
            log.exception("healing_prior_failed", category=category)
    names = set(own) | set(priors)
    return {name: Arm(*own.get(name, (0, 0)), *priors.get(name, (0.0, 0.0))) for name in names}


def _pick(options: list[Strategy], category: str) -> Strategy:
    name = choose([s.name for s in options], arms(category), _rng)
    return BY_NAME[name]


def _strategy_version(source_id: int | None) -> int | None:
    """The strategy version the source runs under, recorded on the action its outcome is judged on."""
    if source_id is None:
        return None
    return Source.objects.filter(pk=source_id).values_list("strategy_version_id", flat=True).first()


def failure_heal(failure: FailureRecord, rca: RCAResult, features: dict[str, Any]) -> HealingAction | None:
    """Start or propose the next strategy for an open failure; None when nothing fits or one is underway."""
    if failure.status != FailureStatus.OPEN:
        return None
    underway = HealingAction.objects.filter(
        failure=failure,
        status__in=[
            HealingStatus.RUNNING,
            HealingStatus.APPROVED,
            HealingStatus.AWAITING_APPROVAL,
            HealingStatus.ESCALATED,
        ],
    )
    if underway.exists():
        return None
    tried = list(HealingAction.objects.filter(failure=failure).values_list("strategy", flat=True))
    features = {**features, "attempt": failure.attempts}
    options = candidates(rca.category, features, exclude=tried)
    automatic = [s for s in options if not s.needs_approval]
    if automatic and failure.attempts < MAX_AUTOMATIC_ATTEMPTS:
        return action_start(failure, rca, _pick(automatic, rca.category), features)
    risky = [s for s in options if s.needs_approval]
    if not risky:
        return None
    strategy = _pick(risky, rca.category)
    evidence = "; ".join(str(e.get("text")) for e in rca.evidence[:3])
    action, _ = healing_action_request(
        source_id=failure.source_id,
        strategy=strategy.name,
        risk=strategy.risk,
        detail={
            "why": f"{rca.category} ({rca.confidence:.0%}): {evidence}",
            "description": strategy.description,
            "failure": failure.pk,
            "tried": tried,
        },
        failure_id=failure.pk,
        rca_id=rca.pk,
        category=rca.category,
        strategy_version_id=_strategy_version(failure.source_id),
    )
    FailureRecord.objects.filter(pk=failure.pk).update(needs_operator=True)
    return action


def action_start(failure: FailureRecord, rca: RCAResult, strategy: Strategy, features: dict[str, Any]) -> HealingAction:
    """A low-risk strategy: decided by policy (recorded as such) and run now."""
    now = timezone.now()
    action = HealingAction.objects.create(
        source_id=failure.source_id,
        strategy_version_id=_strategy_version(failure.source_id),
        failure=failure,
        rca_id=rca.pk,
        category=rca.category,
        strategy=strategy.name,
        risk=strategy.risk,
        status=HealingStatus.APPROVED,
        requested_at=now,
        decided_by=AUTOMATIC,
        decided_at=now,
        reason=f"low risk; chosen for {rca.category} by Thompson sampling",
        detail={"description": strategy.description, "failure": failure.pk},
    )
    HealingEvent.objects.create(
        action=action, kind=HealingEventKind.APPROVED, actor=AUTOMATIC, note=action.reason, at=now
    )
    action_execute(action, actor=AUTOMATIC, features=features)
    action.refresh_from_db()
    return action


def action_execute(action: HealingAction, *, actor: str, features: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run an approved action's strategy and open its verification window. Returns what it did."""
    strategy = BY_NAME[action.strategy]
    source = Source.objects.filter(pk=action.source_id).first() if action.source_id is not None else None
    now = timezone.now()
    if features is None:
        analysis = RCAResult.objects.filter(pk=action.rca_id).first() if action.rca_id else None
        features = dict(analysis.features) if analysis else {}
    if source is None:
        effect: dict[str, Any] = {"error": "the source is gone"}
        _finish(action, ok=False, outcome={"effect": effect, "verified": "nothing to heal"})
        return effect
    try:
        with transaction.atomic():
            effect = ACTIONS[action.strategy](action, source, features)
    except Exception as exc:  # a strategy that cannot act is a failed attempt, not a crashed tick
        log.exception("healing_action_error", action=action.pk, strategy=action.strategy)
        effect = {"error": str(exc)[:500]}
        HealingAction.objects.filter(pk=action.pk).update(status=HealingStatus.RUNNING)
        _finish(action, ok=False, outcome={"effect": effect, "verified": "the action raised"})
        return effect
    secret = effect.pop("secret_once", None)
    HealingAction.objects.filter(pk=action.pk).update(
        status=HealingStatus.RUNNING,
        verify_after=now + timedelta(seconds=strategy.window_s if strategy.verify == "contained" else 0),
        verify_deadline=now + timedelta(seconds=strategy.window_s),
        detail={**action.detail, "effect": effect},
        updated_at=now,
    )
    HealingEvent.objects.create(action=action, kind=HealingEventKind.STARTED, actor=actor, detail=effect, at=now)
    metrics.ACTIONS.labels(strategy=action.strategy, status="running").inc()
    log.info("healing_action_started", action=action.pk, strategy=action.strategy, actor=actor, effect=effect)
    if secret:
        effect = {**effect, "webhook_secret": secret}  # the approver's answer only; never stored
    return effect


def _finish(action: HealingAction, *, ok: bool, outcome: dict[str, Any]) -> bool:
    status = HealingStatus.SUCCEEDED if ok else HealingStatus.FAILED
    now = timezone.now()
    moved = HealingAction.objects.filter(pk=action.pk, status=HealingStatus.RUNNING).update(
        status=status, outcome=outcome, updated_at=now
    )
    if not moved:
        return False  # another worker judged it first
    HealingEvent.objects.create(
        action=action,
        kind=HealingEventKind.SUCCEEDED if ok else HealingEventKind.FAILED,
        actor="healing",
        note=str(outcome.get("verified", "")),
        detail=outcome,
        at=now,
    )
    if action.category:
        stats, _ = StrategyStats.objects.get_or_create(category=action.category, strategy=action.strategy)
        field = "successes" if ok else "failures"
        StrategyStats.objects.filter(pk=stats.pk).update(**{field: F(field) + 1})
    metrics.OUTCOMES.labels(strategy=action.strategy, result="success" if ok else "failure").inc()
    log.info("healing_outcome", action=action.pk, strategy=action.strategy, category=action.category, ok=ok)
    if not ok and action.failure_id is not None:
        # Back to the queue for the next strategy (healing.queue), if it still fails.
        FailureRecord.objects.filter(pk=action.failure_id, status=FailureStatus.OPEN).update(
            attempts=F("attempts") + 1, analysis_due=True
        )
    return True


def actions_verify(*, now: datetime | None = None) -> int:
    """Judge every running healing action whose window allows it; returns how many were judged."""
    now = now or timezone.now()
    judged = 0
    running = HealingAction.objects.filter(
        status=HealingStatus.RUNNING, verify_deadline__isnull=False, failure__isnull=False
    ).select_related("failure__source")
    for action in running:
        failure, deadline = action.failure, action.verify_deadline
        assert failure is not None and deadline is not None
        strategy = BY_NAME.get(action.strategy)
        started = _started_at(action, strategy)
        took = round((now - started).total_seconds(), 1)
        if strategy is not None and strategy.verify == "contained":
            if action.verify_after and now < action.verify_after:
                continue
            quiet = failure.last_seen <= started + timedelta(seconds=CONTAINED_GRACE_S)
            if quiet and failure.status == FailureStatus.OPEN:
                FailureRecord.objects.filter(pk=failure.pk, status=FailureStatus.OPEN).update(
                    status=FailureStatus.RESOLVED, resolved_by=f"contained:{action.strategy}"
                )
            verdict = "no new occurrence" if quiet else "it kept failing"
            judged += _finish(
                action, ok=quiet, outcome={**(action.outcome or {}), "verified": verdict, "after_s": took}
            )
        elif failure.status == FailureStatus.RESOLVED:
            outcome = {"verified": f"failure resolved ({failure.resolved_by or 'engine'})", "after_s": took}
            if "resolution" in (failure.detail or {}):
                outcome["resolution"] = failure.detail["resolution"]
            judged += _finish(action, ok=True, outcome=outcome)
        elif now >= deadline:
            later = _deferred_deadline(failure, strategy, started=started, deadline=deadline, now=now)
            if later is not None:
                _defer(action, deadline=deadline, until=later)
                continue
            judged += _finish(
                action, ok=False, outcome={"verified": "still failing at the window's end", "after_s": took}
            )
    return judged


def _started_at(action: HealingAction, strategy: Strategy | None) -> datetime:
    """When the action ran: its verification opened then (a `contained` one, a window later).

    Not derived from the deadline, which a deferral moves.
    """
    if strategy is None or action.verify_after is None:
        return action.requested_at
    offset = strategy.window_s if strategy.verify == "contained" else 0.0
    return action.verify_after - timedelta(seconds=offset)


def _deferred_deadline(
    failure: FailureRecord, strategy: Strategy | None, *, started: datetime, deadline: datetime, now: datetime
) -> datetime | None:
    """A later deadline when the hysteresis, not the stream, kept the failure from being proven over in time.

    A push-stream failure closes only with its source back in event mode
    (healing.recovery). While the policy holds the source in polling (a flap
    hold, a grown dwell) or on probation, "still open" says nothing of the
    strategy: the judgement waits until the policy lets it back plus the
    failure's quiet time. None (judge now) when nothing holds it, when that
    time has passed already, or when it lies more than one whole hold (flap
    window, longest dwell, validation) past the strategy's own window: a
    source held that long keeps flapping, and that is a failed attempt.
    """
    source = failure.source
    if strategy is None or source is None or source.paused or not needs_event_mode(failure):
        return None
    try:
        policy = HysteresisPolicy.from_config(source.hysteresis or {})
    except ValueError:  # the monitor cannot decide this source either: nothing holds it
        return None
    allowed = push_allowed_at(hysteresis_state(source, now.timestamp()), policy=policy)
    if allowed is None:
        return None
    settle = timedelta(seconds=quiet_s(failure) + DEFER_SLACK_S)
    wanted = datetime.fromtimestamp(allowed, tz=UTC) + settle
    one_hold = timedelta(seconds=policy.flap_window_s + policy.max_dwell_s + policy.validation_window_s)
    if wanted <= max(deadline, now) or wanted > started + timedelta(seconds=strategy.window_s) + one_hold + settle:
        return None
    return wanted


def _defer(action: HealingAction, *, deadline: datetime, until: datetime) -> None:
    """Move the deadline (compare-and-set: one worker defers once) and say why in the audit trail."""
    moved = HealingAction.objects.filter(pk=action.pk, status=HealingStatus.RUNNING, verify_deadline=deadline).update(
        verify_deadline=until, updated_at=timezone.now()
    )
    if not moved:
        return
    source = action.failure.source if action.failure else None
    mode = source.mode if source else "?"
    note = f"source held in {mode} by its hysteresis: judged once it can be back on push, by {until.isoformat()}"
    HealingEvent.objects.create(
        action=action,
        kind=HealingEventKind.DEFERRED,
        actor="healing",
        note=note,
        detail={"from": deadline.isoformat(), "to": until.isoformat(), "mode": mode},
        at=timezone.now(),
    )
    log.info("healing_verification_deferred", action=action.pk, strategy=action.strategy, until=until.isoformat())


# -- healing's own strategies, approved or rejected by an operator (healing.services._carry_out) --


class _OwnStrategies:
    @staticmethod
    def approved(action: HealingAction) -> None:
        effect = action_execute(action, actor=action.decided_by)
        # Shown once to the approver (a rotated webhook secret), never stored.
        action.secret_once = effect.get("webhook_secret")  # type: ignore[attr-defined]

    @staticmethod
    def rejected(action: HealingAction) -> None:
        log.info("healing_action_not_run", action=action.pk, strategy=action.strategy, at=timezone.now().isoformat())


own_strategy_handler(_OwnStrategies())
