"""Writes on subscriptions, and delivering changes to them (docs/contract.md §5).

Delivery guarantees, per subscription:

- at least once: the cursor moves only after the endpoint answered 2xx, so
  a crash between the POST and the cursor update re-sends the batch;
- in seq order: one worker at a time holds the subscription's lease and
  sends the batch right after the cursor; the cursor update is fenced by the
  lease token (and by `epoch`, which a replay bumps), so a worker whose
  lease expired mid-request cannot move it;
- failures back off exponentially with full jitter, Retry-After is a floor,
  the endpoint's circuit breaker stops calls while it is down, and a
  subscription failing for long is disabled with a FailureRecord.
"""

from __future__ import annotations

import json
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from beastflow import crypto
from beastflow.tenancy import current_schema
from callbacks import selectors, transport, wake
from callbacks.models import Delivery, DeliveryStatus, Subscription, SubscriptionStatus
from callbacks.policy import DeliveryPolicy, counts_against_breaker, retry_delay, should_disable
from callbacks.signing import Scheme, delivery_message_id, new_standard_webhooks_secret
from callbacks.transport import Outcome
from engines.changes_reads import committed_head
from engines.models import Source
from engines.partitions import changes_floor
from engines.polling_policy import BreakerState, BreakerStatus, breaker_check, breaker_record
from healing import services as healing
from healing.models import FailureKind
from healing.schemas import FailureReport
from scheduling.services import tenant_wake

log = structlog.get_logger(__name__)

SECRET_PREFIX = "cbsec_"  # noqa: S105  (a label, not a secret)


class SubscriptionError(Exception):
    """A subscription request that cannot be carried out."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []


def delivery_policy() -> DeliveryPolicy:
    return DeliveryPolicy.from_mapping(getattr(settings, "BEASTFLOW_CALLBACKS", {}))


def new_secret(signature: str = Scheme.BEASTFLOW) -> str:
    """A signing secret in the format of the subscription's signature scheme."""
    if signature == Scheme.STANDARD_WEBHOOKS:
        return new_standard_webhooks_secret()
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def subscription_secret(subscription: Subscription) -> str:
    return crypto.decrypt(subscription.secret_encrypted)


# Subscriptions ----------------------------------------------------------------


def _cursor_for(from_seq: int | None, head: int) -> int:
    """`from_seq` is the first seq to deliver; none means changes committed from now on."""
    if from_seq is None:
        return head
    if from_seq > head + 1:
        raise SubscriptionError(
            422,
            f"from_seq is past the newest change ({head}).",
            [{"field": "from_seq", "message": f"must be at most {head + 1}"}],
        )
    cursor = max(0, from_seq - 1)
    floor = changes_floor()
    if cursor < floor:
        # Retention dropped changes up to the floor: starting below it would
        # skip them silently (the same 410 as the changes feed answers).
        raise SubscriptionError(
            410,
            f"Changes up to seq {floor} are no longer kept (retention); from_seq must be at least {floor + 1}.",
            [{"field": "from_seq", "message": f"must be at least {floor + 1}"}],
        )
    return cursor


def _check_sources(sources: list[int]) -> None:
    known = set(Source.objects.filter(pk__in=sources).values_list("pk", flat=True))
    missing = [source for source in sources if source not in known]
    if missing:
        raise SubscriptionError(
            422,
            "Some sources do not exist.",
            [{"field": "sources", "message": f"no such source: {source}"} for source in missing],
        )


def _after_commit(schema: str, *, deliver: bool) -> None:
    # Redis hints only: a failure here delays delivery until the sweep.
    try:
        wake.subscriptions_changed(schema)
        # Swept at the busy tenants' pace from now on, not the idle one.
        tenant_wake(schema=schema, sweep=True)
        if deliver:
            wake.wake_deliveries(schema)
    except Exception:
        log.exception("subscription_wake_failed", schema=schema)


@transaction.atomic
def subscription_create(
    *, url: str, sources: list[int] | None, from_seq: int | None, signature: str = Scheme.BEASTFLOW
) -> tuple[Subscription, str]:
    """Create a subscription; returns it with its signing secret (shown only now)."""
    if signature not in {scheme.value for scheme in Scheme}:
        raise SubscriptionError(
            422, f"Unknown signature scheme {signature!r}.", [{"field": "signature", "message": "unknown scheme"}]
        )
    if sources is not None:
        sources = sorted(set(sources))
        _check_sources(sources)
    head = committed_head()
    cursor = _cursor_for(from_seq, head)
    secret = new_secret(signature)
    subscription = Subscription.objects.create(
        url=url, sources=sources, cursor=cursor, secret_encrypted=crypto.encrypt(secret), signature=signature
    )
    schema = current_schema()
    transaction.on_commit(lambda: _after_commit(schema, deliver=cursor < head))
    log.info("subscription_created", subscription=subscription.pk, cursor=cursor, sources=sources, signature=signature)
    return subscription, secret


@transaction.atomic
def subscription_delete(*, subscription: Subscription) -> None:
    subscription_id = subscription.pk
    subscription.delete()
    log.info("subscription_deleted", subscription=subscription_id)


@transaction.atomic
def subscription_replay(*, subscription: Subscription, from_seq: int) -> Subscription:
    """Deliver again from `from_seq`; a delivery in flight cannot move the cursor back."""
    cursor = _cursor_for(from_seq, committed_head())
    now = timezone.now()
    Subscription.objects.filter(pk=subscription.pk).update(
        cursor=cursor, epoch=F("epoch") + 1, failures=0, failing_since=None, next_attempt_at=None, updated_at=now
    )
    schema = current_schema()
    transaction.on_commit(lambda: _after_commit(schema, deliver=True))
    log.info("subscription_replayed", subscription=subscription.pk, cursor=cursor)
    subscription.refresh_from_db()
    return subscription


@transaction.atomic
def subscription_enable(*, subscription: Subscription) -> Subscription:
    """Active again, with a fresh start: no backoff, a closed breaker."""
    Subscription.objects.filter(pk=subscription.pk).update(
        status=SubscriptionStatus.ACTIVE,
        disabled_at=None,
        disabled_reason="",
        failures=0,
        failing_since=None,
        next_attempt_at=None,
        breaker={},
        breaker_status=BreakerStatus.CLOSED.value,
        updated_at=timezone.now(),
    )
    schema = current_schema()
    transaction.on_commit(lambda: _after_commit(schema, deliver=True))
    log.info("subscription_enabled", subscription=subscription.pk)
    subscription.refresh_from_db()
    return subscription


def subscriptions_present() -> tuple[bool, bool]:
    """(any subscription at all, an active one), in one query.

    A tenant without an active one has nothing to deliver, and without any
    (deliveries go with their subscription) nothing to prune: most tenants'
    sweeps end here.
    """
    statuses = set(Subscription.objects.values_list("status", flat=True).distinct())
    return bool(statuses), SubscriptionStatus.ACTIVE.value in statuses


# Delivery ---------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryResult:
    batches: int = 0  # batches delivered (2xx)
    failed: bool = False  # the last attempt failed
    busy: bool = False  # another worker holds the lease
    more: bool = False  # stopped by the run's limits with changes left
    retry_in_s: float | None = None  # the subscription waits this long (backoff, breaker)


@dataclass(frozen=True)
class RunSummary:
    subscriptions: int
    batches: int
    failures: int
    more: bool
    retry_in_s: float | None


Clock = Callable[[], datetime]


def deliveries_run(
    *, now: datetime | None = None, policy: DeliveryPolicy | None = None, rand: Callable[[], float] = random.random
) -> RunSummary:
    """Deliver to every active subscription of the current tenant that is due.

    `now` pins the clock (tests); by default each step reads the real time.
    """
    policy = policy or delivery_policy()
    clock: Clock = (lambda: now) if now is not None else timezone.now
    at = clock()
    due = (
        Subscription.objects.filter(status=SubscriptionStatus.ACTIVE)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=at))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    deadline = time.monotonic() + policy.run_budget_s
    results: list[DeliveryResult] = []
    more = False
    for subscription_id in list(due):
        if time.monotonic() > deadline:
            more = True  # the rest go in the next run
            break
        results.append(_deliver(subscription_id, clock=clock, policy=policy, rand=rand, deadline=deadline))
    waits = [result.retry_in_s for result in results if result.retry_in_s is not None]
    waiting = (
        Subscription.objects.filter(status=SubscriptionStatus.ACTIVE, next_attempt_at__gt=at)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    if waiting is not None:
        waits.append((waiting - at).total_seconds())
    return RunSummary(
        subscriptions=len(results),
        batches=sum(result.batches for result in results),
        failures=sum(1 for result in results if result.failed),
        more=more or any(result.more for result in results),
        retry_in_s=max(0.0, min(waits)) if waits else None,
    )


def subscription_deliver(
    *,
    subscription_id: int,
    now: datetime | None = None,
    policy: DeliveryPolicy | None = None,
    rand: Callable[[], float] = random.random,
) -> DeliveryResult:
    """Deliver one subscription's pending batches, if no other worker is at it."""
    policy = policy or delivery_policy()
    clock: Clock = (lambda: now) if now is not None else timezone.now
    return _deliver(
        subscription_id, clock=clock, policy=policy, rand=rand, deadline=time.monotonic() + policy.run_budget_s
    )


def _deliver(
    subscription_id: int, *, clock: Clock, policy: DeliveryPolicy, rand: Callable[[], float], deadline: float
) -> DeliveryResult:
    result = DeliveryResult()
    for _ in range(2):
        token = secrets.token_hex(16)
        if not _lease_acquire(subscription_id, token, clock(), policy):
            return DeliveryResult(batches=result.batches, busy=True)
        try:
            step = _deliver_leased(subscription_id, token, clock=clock, policy=policy, rand=rand, deadline=deadline)
        finally:
            _lease_release(subscription_id, token)
        result = DeliveryResult(
            batches=result.batches + step.batches, failed=step.failed, more=step.more, retry_in_s=step.retry_in_s
        )
        # Caught up: but a wake that our lease turned away while we released
        # it would be lost, so look once more after the release.
        if step.failed or step.more or step.retry_in_s is not None or not _has_pending(subscription_id):
            break
    return result


def _lease_acquire(subscription_id: int, token: str, now: datetime, policy: DeliveryPolicy) -> bool:
    # Compare-and-set: of two workers, one updates the row, the other sees 0 rows.
    return (
        Subscription.objects.filter(pk=subscription_id, status=SubscriptionStatus.ACTIVE)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_token=token, lease_until=now + timedelta(seconds=policy.lease_s))
        == 1
    )


def _lease_renew(subscription_id: int, token: str, now: datetime, policy: DeliveryPolicy) -> None:
    Subscription.objects.filter(pk=subscription_id, lease_token=token).update(
        lease_until=now + timedelta(seconds=policy.lease_s)
    )


def _lease_release(subscription_id: int, token: str) -> None:
    Subscription.objects.filter(pk=subscription_id, lease_token=token).update(lease_token="", lease_until=None)


def _has_pending(subscription_id: int) -> bool:
    subscription = Subscription.objects.filter(pk=subscription_id, status=SubscriptionStatus.ACTIVE).first()
    return subscription is not None and selectors.has_changes_for(
        after=subscription.cursor, sources=subscription.sources
    )


def _deliver_leased(
    subscription_id: int,
    token: str,
    *,
    clock: Clock,
    policy: DeliveryPolicy,
    rand: Callable[[], float],
    deadline: float,
) -> DeliveryResult:
    """Send batch after batch while they succeed, within the run's limits.

    Steps per batch: reload the row (still ours, still active, due?); take
    the next changes after the cursor; ask the breaker; POST; record the
    attempt and move the cursor (success) or schedule the retry (failure).
    """
    batches = 0
    for _ in range(policy.max_batches_per_run):
        if time.monotonic() > deadline:
            return DeliveryResult(batches=batches, more=True)
        subscription = Subscription.objects.filter(pk=subscription_id, lease_token=token).first()
        if subscription is None or subscription.status != SubscriptionStatus.ACTIVE:
            return DeliveryResult(batches=batches)
        now = clock()
        if subscription.next_attempt_at is not None and subscription.next_attempt_at > now:
            return DeliveryResult(batches=batches, retry_in_s=(subscription.next_attempt_at - now).total_seconds())
        changes = selectors.changes_for(
            after=subscription.cursor, sources=subscription.sources, limit=policy.batch_size
        )
        if not changes:
            return DeliveryResult(batches=batches)
        check = breaker_check(subscription.breaker_state(), now=now.timestamp(), policy=policy.breaker)
        if not check.allowed:
            Subscription.objects.filter(pk=subscription_id, lease_token=token).update(
                next_attempt_at=now + timedelta(seconds=check.retry_in_s), updated_at=now
            )
            return DeliveryResult(batches=batches, retry_in_s=check.retry_in_s)
        if check.state != subscription.breaker_state():
            # Open -> half-open: this call is the probe. Stored before the
            # call so that operators see a probe in flight.
            Subscription.objects.filter(pk=subscription_id, lease_token=token).update(
                breaker=check.state.to_dict(), breaker_status=check.state.status.value, updated_at=now
            )
        outcome = transport.post_changes(
            url=subscription.url,
            body=encode_body(changes),
            secret=subscription_secret(subscription),
            subscription_id=subscription.pk,
            timestamp=int(now.timestamp()),
            policy=policy,
            scheme=subscription.signature,
            message_id=delivery_message_id(subscription.pk, subscription.epoch, changes[0]["seq"], changes[-1]["seq"]),
        )
        retry_in = _record(subscription, token, changes, outcome, check.state, now=now, policy=policy, rand=rand)
        if not outcome.ok:
            return DeliveryResult(batches=batches, failed=True, retry_in_s=retry_in)
        batches += 1
        _lease_renew(subscription_id, token, clock(), policy)
    return DeliveryResult(batches=batches, more=True)


def encode_body(changes: list[dict[str, Any]]) -> bytes:
    return json.dumps({"changes": changes}, separators=(",", ":"), ensure_ascii=False).encode()


def _record(
    subscription: Subscription,
    token: str,
    changes: list[dict[str, Any]],
    outcome: Outcome,
    breaker: BreakerState,
    *,
    now: datetime,
    policy: DeliveryPolicy,
    rand: Callable[[], float],
) -> float | None:
    """Write the attempt and the subscription's new state; the retry delay on failure."""
    now_s = now.timestamp()
    retry_in: float | None = None
    disable_detail: dict[str, Any] | None = None
    if outcome.ok:
        breaker = breaker_record(breaker, ok=True, now=now_s, policy=policy.breaker)
        state: dict[str, Any] = {
            "cursor": changes[-1]["seq"],
            "failures": 0,
            "failing_since": None,
            "next_attempt_at": None,
            "delivered_changes": F("delivered_changes") + len(changes),
            "last_success_at": now,
        }
    else:
        breaker = breaker_record(
            breaker, ok=not counts_against_breaker(outcome.http_status), now=now_s, policy=policy.breaker
        )
        failures = subscription.failures + 1
        failing_since = subscription.failing_since or now
        retry_in = retry_delay(failures=failures, policy=policy, retry_after_s=outcome.retry_after_s, rand=rand)
        if breaker.status is BreakerStatus.OPEN:
            retry_in = max(retry_in, breaker.opened_at + policy.breaker.cooldown_for(breaker.trips) - now_s)
        state = {
            "failures": failures,
            "failing_since": failing_since,
            "next_attempt_at": now + timedelta(seconds=retry_in),
            "failures_total": F("failures_total") + 1,
            "last_failure_at": now,
            "last_error": outcome.error,
        }
        failing_for_s = (now - failing_since).total_seconds()
        if should_disable(failures=failures, failing_for_s=failing_for_s, policy=policy):
            reason = f"{failures} failed attempts in a row over {failing_for_s / 60:.0f} min; last: {outcome.error}"
            state.update(status=SubscriptionStatus.DISABLED, disabled_at=now, disabled_reason=reason[:300])
            disable_detail = {
                "subscription": subscription.pk,
                "url": subscription.url,
                "failures": failures,
                "failing_since": failing_since.isoformat(),
                "http_status": outcome.http_status,
                "last_error": outcome.error,
            }
    try:
        with transaction.atomic():
            Delivery.objects.create(
                subscription_id=subscription.pk,
                first_seq=changes[0]["seq"],
                last_seq=changes[-1]["seq"],
                count=len(changes),
                attempt=subscription.failures + 1,
                status=DeliveryStatus.SUCCEEDED if outcome.ok else DeliveryStatus.FAILED,
                http_status=outcome.http_status,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
                retry_after_s=outcome.retry_after_s,
                next_attempt_at=state["next_attempt_at"],
                created_at=now,
            )
            # Fenced: a replay (epoch) or a lost lease (token) wins over this attempt.
            moved = Subscription.objects.filter(pk=subscription.pk, lease_token=token, epoch=subscription.epoch).update(
                breaker=breaker.to_dict(),
                breaker_status=breaker.status.value,
                attempts_total=F("attempts_total") + 1,
                updated_at=now,
                **state,
            )
            if moved and disable_detail is not None:
                # Sustained failure is an operator's (and RCA's) business: it
                # folds into the subscription's open record if there is one.
                healing.failure_report(
                    kind=FailureKind.CALLBACK_FAILING,
                    identity=failure_identity(subscription.pk),
                    detail=disable_detail,
                )
            elif moved and outcome.ok and _was_failing(subscription):
                # Delivering again after failures (or after an enable): whatever was open is over.
                healing.failure_resolve(
                    source_id=None, kind=FailureKind.CALLBACK_FAILING, identity=failure_identity(subscription.pk)
                )
    except IntegrityError:
        # Deleted while the request was out: nothing left to record it on.
        log.info("delivery_unrecorded", subscription=subscription.pk)
        return retry_in
    log.info(
        "callback_delivered" if outcome.ok else "callback_failed",
        subscription=subscription.pk,
        first_seq=changes[0]["seq"],
        last_seq=changes[-1]["seq"],
        http_status=outcome.http_status,
        error=outcome.error or None,
        retry_in_s=round(retry_in, 3) if retry_in is not None else None,
        breaker=breaker.status.value,
        disabled=disable_detail is not None,
    )
    return retry_in


def _was_failing(subscription: Subscription) -> bool:
    last_failure, last_success = subscription.last_failure_at, subscription.last_success_at
    return last_failure is not None and (last_success is None or last_success < last_failure)


def failure_identity(subscription_id: int) -> dict[str, Any]:
    # One open FailureRecord per subscription: its fingerprint is made of this.
    return {"subscription": subscription_id}


def failure_fingerprint(subscription_id: int) -> str:
    identity = failure_identity(subscription_id)
    return FailureReport(kind=FailureKind.CALLBACK_FAILING.value, identity=identity).fingerprint()


def deliveries_prune(*, now: datetime | None = None, keep_days: float | None = None, chunk: int = 5000) -> int:
    """Delete delivery rows older than the retention, a chunk per call (the sweep calls it)."""
    days = keep_days if keep_days is not None else getattr(settings, "BEASTFLOW_CALLBACK_RETENTION_DAYS", 7)
    cutoff = (now or timezone.now()) - timedelta(days=float(days))
    ids = list(Delivery.objects.filter(created_at__lt=cutoff).order_by("id").values_list("id", flat=True)[:chunk])
    if not ids:
        return 0
    deleted, _ = Delivery.objects.filter(id__in=ids).delete()
    return deleted
