"""What each healing strategy does: the callables, wired to strategy names in one place (ACTIONS).

Each takes the action, its source and the RCA features, does one bounded
thing through the engines' own services, and returns what it did (stored on
the action). Whether it helped is judged later (healing.healer.actions_verify).
Also the approval handler of healing's own strategies: `approved` runs the
strategy, `rejected` leaves everything as it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog

from engines import source_ops
from engines.models import PollTrigger, Source
from healing.models import HealingAction

log = structlog.get_logger(__name__)

HOLD_S = 60.0
Features = Mapping[str, Any]
Action = Callable[[HealingAction, Source, Features], dict[str, Any]]


def retry_backoff(action: HealingAction, source: Source, features: Features) -> dict[str, Any]:
    attempt = int(features.get("attempt") or 0)
    delay = float(min(60, 2**attempt))
    source_ops.request_poll(source.pk, PollTrigger.MANUAL, countdown=delay)
    return {"poll_in_s": delay}


def wait_for_upstream(action: HealingAction, source: Source, features: Features) -> dict[str, Any]:
    # Nothing to do but not to make it worse: the breaker spaces the probes.
    return {"waiting_for": features.get("host")}


def reset_circuit_breaker(action: HealingAction, source: Source, features: Features) -> dict[str, Any]:
    from beastflow.redis_client import get_redis
    from engines.polling import breaker_key

    host = features.get("host")
    reset = bool(host) and bool(get_redis().delete(breaker_key(str(host))))
    source_ops.request_poll(source.pk, PollTrigger.MANUAL)
    return {"host": host, "breaker_was_open": reset}


def gap_fill_poll(action: HealingAction, source: Source, features: Features) -> dict[str, Any]:
    source_ops.request_poll(source.pk, PollTrigger.GAP_FILL)
    return {"after_seq": features.get("contiguous_seq")}


def _hold_in_polling(action: HealingAction, source: Source, why: str) -> dict[str, Any]:
    """Put the source in polling (or keep it there) for at least HOLD_S from now; says what landed.

    engines.source_ops.hold_in_polling reads the row afresh under a lock:
    the source object was loaded when the action was chosen, and its mode or
    state may be stale by now. A source already on its way down (hybrid,
    degrading) keeps going: the machine carries the hold into polling once
    its polls caught up. From event or a recovery on probation the move is
    a forced switch, recorded like any (it counts towards flapping).
    """
    now = time.time()
    forced = source_ops.hold_in_polling(
        source,
        hold_s=HOLD_S,
        actor=f"healing:{action.pk}",
        reason=why,
        signals={"healing_action": action.pk},
        now=now,
    )
    held = forced.decision.state
    return {
        "switched": forced.switched,
        "from_mode": forced.before.mode.value,
        "held_until": datetime.fromtimestamp(held.hold_until, tz=UTC).isoformat(),
        "hold_s": round(held.hold_until - now),
    }


def switch_to_polling(action: HealingAction, source: Source, features: Features) -> dict[str, Any]:
    return _hold_in_polling(action, source, f"healing: {features.get('kind')} -> polling now")


def hold_in_polling(action: HealingAction, source: Source, features: Features) -> dict[str, Any]:
    return _hold_in_polling(action, source, "healing: held in polling")


def keep_polling(action: HealingAction, source: Source, features: Features) -> dict[str, Any]:
    # Nothing to change: polling is already the fallback. The action exists so
    # that the outcome (push back and validated within the window) is judged
    # and counted like any other strategy's.
    return {"mode": Source.objects.filter(pk=source.pk).values_list("mode", flat=True).first()}


def slow_polling(action: HealingAction, source: Source, features: Features) -> dict[str, Any]:
    poll = dict(source.poll or {})
    old = float(poll.get("min_interval_s", 1.0))
    ceiling = float(poll.get("max_interval_s", 60.0))
    retry_after = features.get("retry_after_s")
    wanted = max(old * 2, float(retry_after) if isinstance(retry_after, int | float) else 0.0)
    poll["min_interval_s"] = min(ceiling, wanted)
    # Not an edit: healing's own change must not read as an operator's config change.
    source_ops.parameters_set(source, {"poll": poll}, edit=False)
    return {"min_interval_s": {"from": old, "to": poll["min_interval_s"]}}


def full_reconcile(action: HealingAction, source: Source, features: Features) -> dict[str, Any]:
    from engines.models import ReconcileTrigger
    from engines.reconcile.runs import reconcile_request

    run, created = reconcile_request(source=source, trigger=ReconcileTrigger.MANUAL)
    return {"run": run.pk, "new_run": created}


def pause_source(action: HealingAction, source: Source, features: Features) -> dict[str, Any]:
    source_ops.pause(source, edit=False)  # paused already (by an operator meanwhile) is paused too
    return {"paused": True}


def rotate_webhook_secret(action: HealingAction, source: Source, features: Features) -> dict[str, Any]:
    secret = source_ops.webhook_secret_rotate(source)
    # The secret itself is not stored in the outcome: the operator who approved sees it once.
    return {"rotated": True, "secret_once": secret}


def notify_operator(action: HealingAction, source: Source, features: Features) -> dict[str, Any]:
    return {"acknowledged": True}


ACTIONS: dict[str, Action] = {
    "retry_backoff": retry_backoff,
    "wait_for_upstream": wait_for_upstream,
    "reset_circuit_breaker": reset_circuit_breaker,
    "gap_fill_poll": gap_fill_poll,
    "switch_to_polling": switch_to_polling,
    "keep_polling": keep_polling,
    "hold_in_polling": hold_in_polling,
    "slow_polling": slow_polling,
    "full_reconcile": full_reconcile,
    "pause_source": pause_source,
    "rotate_webhook_secret": rotate_webhook_secret,
    "notify_operator": notify_operator,
}
