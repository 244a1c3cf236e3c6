"""The operations on an existing source, one entry point each, for every caller.

The API, the console, healing, strategies and the engines' own monitor and
dispatcher force a mode, hold a source in polling, request a poll, pause,
resume, set parameters or rotate the webhook secret through these, never by
writing the source row or queueing the poll task themselves: each operation
keeps its guards (a lock, a compare-and-set), its wake-ups and its cache
invalidation in one place. The decisions stay pure (engines/hysteresis.py);
creating, changing from a definition and deleting a source are the API's
services in engines/sources.py, whose change takes the same lock as
`_locked`, writes only the definition's columns and pauses or resumes
through `pause` and `resume` here.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from django.db import transaction
from django.utils import timezone

from beastflow import crypto
from beastflow.tenancy import current_schema
from engines import hysteresis, sending
from engines.hysteresis import Decision, HysteresisPolicy, HysteresisState
from engines.ingest.service import source_cache
from engines.models import PollTrigger, Source
from engines.modes import Mode
from engines.polling import poll_scheduled
from engines.reconcile.runs import reconcile_scheduled
from engines.selectors import source_health
from engines.switching import source_switch_mode
from scheduling.services import source_wake

log = structlog.get_logger(__name__)

# What `parameters_set` may write: the policy the judge and the poller read on
# every pass, and the strategy version they come from (strategies/services.py).
PARAMETERS = frozenset({"hysteresis", "health", "poll", "strategy_version_id"})

WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105  (a label, not a secret)


def hysteresis_state(source: Source, now: float) -> HysteresisState:
    """The machine's state as stored on the source, or a fresh one for the mode it is in."""
    state, unreadable = HysteresisState.stored_or_initial(source.hysteresis_state, mode=Mode(source.mode), now=now)
    if unreadable:
        log.warning("hysteresis_state_unreadable", source=source.pk)
    return state


# -- modes -------------------------------------------------------------------------


@dataclass(frozen=True)
class Forced:
    """What a forced mode or a hold did."""

    from_mode: str  # the mode column, read under the lock
    before: HysteresisState  # the machine's state, read under the lock
    decision: Decision  # `switch_to` None: no switch was due; `state`: the state decided
    switched: bool  # the switch landed, with its audit row


def _locked(source: Source, now: float | None) -> tuple[Source, HysteresisState, HysteresisPolicy, float]:
    """The source read afresh under a row lock, its state and policy.

    The caller's object was loaded earlier (a page an operator looked at, an
    action chosen a while ago): a mode or state decided from it would lose a
    hold or the monitor's newer state. The monitor writes its state by
    compare-and-set, so it cannot overwrite what is decided under the lock.
    """
    now = time.time() if now is None else now
    locked = Source.objects.select_for_update().get(pk=source.pk)
    return locked, hysteresis_state(locked, now), HysteresisPolicy.from_config(locked.hysteresis or {}), now


@transaction.atomic
def force_mode(
    source: Source,
    *,
    to: Mode,
    actor: str,
    reason: str,
    signals: Mapping[str, Any],
    with_health: bool = False,
    now: float | None = None,
) -> Forced:
    """Put the source in `to` on an operator's or a healing action's say-so (engines.hysteresis.force_mode).

    Recorded like any switch (engines/switching.py: the ModeSwitch row, the
    wake-ups), with `signals` as its evidence, plus the source's health read
    under the lock when `with_health` (what an operator decided from).
    Nothing is written when the source is in `to` already.
    """
    locked, before, policy, now = _locked(source, now)
    decision = hysteresis.force_mode(before, to=to, now=now, policy=policy, reason=reason)
    from_mode = locked.mode
    if decision.switch_to is None:
        return Forced(from_mode=from_mode, before=before, decision=decision, switched=False)
    evidence = {**signals, "health": source_health(locked)} if with_health else dict(signals)
    switched = source_switch_mode(source=locked, decision=decision, signals=evidence, actor=actor)
    return Forced(from_mode=from_mode, before=before, decision=decision, switched=switched)


@transaction.atomic
def hold_in_polling(
    source: Source, *, hold_s: float, actor: str, reason: str, signals: Mapping[str, Any], now: float | None = None
) -> Forced:
    """Put the source in polling, or keep it there, for at least `hold_s` from now (engines.hysteresis.hold_in_polling).

    A source already in polling or on its way down keeps its course, its
    hold stored for the machine to keep; otherwise the move is a forced
    switch, recorded like any (it counts towards flapping).
    """
    locked, before, policy, now = _locked(source, now)
    decision = hysteresis.hold_in_polling(before, now=now, policy=policy, reason=reason, hold_s=hold_s)
    from_mode = locked.mode
    if decision.switch_to is None:
        Source.objects.filter(pk=locked.pk, mode=locked.mode).update(hysteresis_state=decision.state.to_dict())
        return Forced(from_mode=from_mode, before=before, decision=decision, switched=False)
    switched = source_switch_mode(source=locked, decision=decision, signals=dict(signals), actor=actor)
    return Forced(from_mode=from_mode, before=before, decision=decision, switched=switched)


# -- polls -------------------------------------------------------------------------


def request_poll(
    source_id: int,
    trigger: PollTrigger | str,
    *,
    countdown: float | None = None,
    expires: datetime | None = None,
    at_once: bool = False,
) -> None:
    """Queue a poll of the source (engines.tasks.source_poll_task), in the current tenant's schema.

    Once the caller's transaction commits, so that the worker sees what it
    wrote (an audit row, a switch) and a transaction rolled back polls
    nothing; outside a transaction, at once. `at_once`: now even inside one
    (the judge's gap fill: the poll needs none of the batch's writes, and a
    batch tried again must not lose the poll its cooldown already counted).
    `countdown`: not before that many seconds; `expires`: dropped unless
    started by then (the dispatcher's claim).
    """
    args = (source_id, PollTrigger(trigger).value)  # ValueError on an unknown trigger, here rather than on a worker
    options: dict[str, Any] = {
        name: value for name, value in (("countdown", countdown), ("expires", expires)) if value is not None
    }
    # The schema now, for tenant-schemas-celery: the commit may come after the caller left the tenant's context.
    options["headers"] = {"_schema_name": current_schema()}
    task = sending.poll_task()
    if at_once:
        task.apply_async(args=args, **options)
    else:
        transaction.on_commit(lambda: task.apply_async(args=args, **options))


# -- pause, parameters, secrets ----------------------------------------------------------


def pause(source: Source, *, edit: bool = True) -> bool:
    """Pause the source: pushes are still stored, the monitor and scheduled polls leave it alone.

    False when it was paused already. `edit`: an operator's change, stamped
    on `updated_at` (RCA reads it as a recent config change,
    healing/rca/context.py); healing's own pause is not one.
    """
    return _paused_set(source, True, edit=edit)


def resume(source: Source, *, edit: bool = True) -> bool:
    """Resume a paused source (see `pause`); False when it was not paused."""
    return _paused_set(source, False, edit=edit)


@transaction.atomic
def _paused_set(source: Source, paused: bool, *, edit: bool) -> bool:
    now = timezone.now()
    stamp: dict[str, Any] = {"updated_at": now} if edit else {}
    if not paused:
        stamp["resumed_at"] = now  # the silence while paused was nobody's to judge (engines.monitor.signals_for)
    # Compare-and-set on the flag: of two callers, one pauses and the other is told it was paused already.
    if not Source.objects.filter(pk=source.pk, paused=not paused).update(paused=paused, **stamp):
        return False
    source.paused = paused
    if not paused:
        source.resumed_at = now
    if edit:
        source.updated_at = now
    # Paused sources leave the schedule when next claimed, resumed ones are judged and polled again: now.
    # Only the deadlines the source has in its mode: one it has not would be visited for nothing.
    source_wake(source.pk, judge=True, poll=poll_scheduled(source), reconcile=reconcile_scheduled(source))
    _forget_cached(source.pk)
    log.info("source_paused" if paused else "source_resumed", source=source.pk)
    return True


def parameters_set(source: Source, fields: Mapping[str, Any], *, edit: bool) -> bool:
    """Write some of the source's policy parameters (`PARAMETERS`) as given; False when the source is gone.

    Not a change of its definition (engines.sources.source_update validates
    a whole one): the caller derived these from the stored ones, a strategy
    version's (strategies/services.py) or healing's slower polling. `edit`:
    a change of its configuration, stamped on `updated_at` (see `pause`) and
    judged at once under the new parameters; healing's own adjustment, or
    dropping a version's label, is neither.
    """
    unknown = set(fields) - PARAMETERS
    if unknown:
        raise ValueError(f"not a parameter of a source: {sorted(unknown)}")
    stamp = {"updated_at": timezone.now()} if edit else {}
    changed = bool(Source.objects.filter(pk=source.pk).update(**fields, **stamp))
    for name, value in fields.items():
        setattr(source, name, value)
    if changed and edit:
        source_wake(source.pk, judge=True)
    return changed


def new_webhook_secret() -> str:
    """A webhook secret for a new source (engines.sources.source_create) or a rotation."""
    return WEBHOOK_SECRET_PREFIX + secrets.token_urlsafe(32)


def webhook_secret_rotate(source: Source) -> str:
    """Give the source a new webhook secret and return it (shown once; only its encrypted form is stored).

    Other web processes cache source facts for a few seconds: the new
    secret holds everywhere after that, in this process once committed.
    """
    secret = new_webhook_secret()
    source.webhook_secret_encrypted = crypto.encrypt(secret)
    Source.objects.filter(pk=source.pk).update(webhook_secret_encrypted=source.webhook_secret_encrypted)
    _forget_cached(source.pk)
    return secret


def _forget_cached(source_id: int) -> None:
    schema = current_schema()  # now: the callback may run after the caller has left the tenant's schema
    transaction.on_commit(lambda: source_cache.forget(schema, source_id))
