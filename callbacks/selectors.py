"""Reads of subscriptions and deliveries, shared by the API and the delivery service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from callbacks.models import Delivery, Subscription
from engines.models import Change
from engines.selectors import change_render


def subscription_get(subscription_id: Any) -> Subscription | None:
    try:
        pk = int(subscription_id)
    except (TypeError, ValueError):
        return None
    if not 0 < pk < 2**63:  # beyond bigint the database would fail, not answer "none"
        return None
    return Subscription.objects.filter(pk=pk).first()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def subscription_render(subscription: Subscription) -> dict[str, Any]:
    return {
        "id": subscription.pk,
        "url": subscription.url,
        "sources": subscription.sources,
        "signature": subscription.signature,
        "status": subscription.status,
        "cursor": subscription.cursor,
        "disabled_at": _iso(subscription.disabled_at),
        "disabled_reason": subscription.disabled_reason,
        "failures": subscription.failures,
        "failing_since": _iso(subscription.failing_since),
        "next_attempt_at": _iso(subscription.next_attempt_at),
        "breaker": subscription.breaker_status,
        "delivered_changes": subscription.delivered_changes,
        "attempts_total": subscription.attempts_total,
        "failures_total": subscription.failures_total,
        "last_success_at": _iso(subscription.last_success_at),
        "last_failure_at": _iso(subscription.last_failure_at),
        "last_error": subscription.last_error,
        "created_at": subscription.created_at.isoformat(),
        "updated_at": subscription.updated_at.isoformat(),
    }


def subscriptions_render(subscriptions: Sequence[Subscription]) -> list[dict[str, Any]]:
    return [subscription_render(subscription) for subscription in subscriptions]


def delivery_render(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.pk,
        "subscription": delivery.subscription_id,
        "first_seq": delivery.first_seq,
        "last_seq": delivery.last_seq,
        "count": delivery.count,
        "attempt": delivery.attempt,
        "status": delivery.status,
        "http_status": delivery.http_status,
        "error": delivery.error,
        "duration_ms": round(delivery.duration_ms, 3),
        "retry_after_s": delivery.retry_after_s,
        "next_attempt_at": _iso(delivery.next_attempt_at),
        "created_at": delivery.created_at.isoformat(),
    }


def deliveries_render(deliveries: Sequence[Delivery]) -> list[dict[str, Any]]:
    return [delivery_render(delivery) for delivery in deliveries]


def changes_for(*, after: int, sources: list[int] | None, limit: int) -> list[dict[str, Any]]:
    """The next changes a subscription gets: seq > after, its sources only, oldest first."""
    queryset = Change.objects.filter(seq__gt=after)
    if sources is not None:
        queryset = queryset.filter(source_id__in=sources)
    return [change_render(change) for change in queryset.order_by("seq")[:limit]]


def has_changes_for(*, after: int, sources: list[int] | None) -> bool:
    queryset = Change.objects.filter(seq__gt=after)
    if sources is not None:
        queryset = queryset.filter(source_id__in=sources)
    return queryset.exists()
