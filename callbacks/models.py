"""Tenant-schema models of outbound callbacks: subscriptions and their deliveries."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from callbacks.signing import Scheme
from engines.polling_policy import BreakerState, BreakerStatus


class SubscriptionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    DISABLED = "disabled", "Disabled"


class SignatureScheme(models.TextChoices):
    """How a subscription's callbacks are signed (see docs/callbacks.md)."""

    BEASTFLOW = Scheme.BEASTFLOW.value, "X-BeastFlow-Signature (t=, v1=)"
    STANDARD_WEBHOOKS = (
        Scheme.STANDARD_WEBHOOKS.value,
        "Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature)",
    )


class BreakerStatusChoices(models.TextChoices):
    CLOSED = BreakerStatus.CLOSED.value, "Closed"
    OPEN = BreakerStatus.OPEN.value, "Open"
    HALF_OPEN = BreakerStatus.HALF_OPEN.value, "Half-open"


class Subscription(models.Model):
    """An endpoint that receives the tenant's changes, in seq order, at least once.

    `cursor` is the last seq delivered (a 2xx answered); it only moves
    forward under the delivery lease, except by replay, which also bumps
    `epoch` so that a delivery still in flight cannot move it back.
    """

    url = models.CharField(max_length=2000)
    # Source ids to deliver, or null for every source of the tenant.
    sources = models.JSONField(null=True, blank=True)
    secret_encrypted = models.TextField(editable=False)
    # Chosen at creation with a secret of its format (a standard-webhooks secret is whsec_ + base64).
    signature = models.CharField(max_length=32, choices=SignatureScheme.choices, default=SignatureScheme.BEASTFLOW)
    cursor = models.BigIntegerField(default=0)
    epoch = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=SubscriptionStatus.choices, default=SubscriptionStatus.ACTIVE)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True, default="")

    # Retry state of the batch at the cursor.
    failures = models.PositiveIntegerField(default=0, help_text="Failed attempts in a row.")
    failing_since = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    # The endpoint's circuit breaker: engines.polling_policy.BreakerState as a
    # dict; its status is repeated in a column for lists and filters.
    breaker = models.JSONField(default=dict, blank=True)
    breaker_status = models.CharField(
        max_length=16, choices=BreakerStatusChoices.choices, default=BreakerStatusChoices.CLOSED
    )

    # One worker delivers at a time: whoever holds an unexpired lease.
    lease_token = models.CharField(max_length=32, blank=True, default="", editable=False)
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)

    delivered_changes = models.BigIntegerField(default=0)
    attempts_total = models.BigIntegerField(default=0)
    failures_total = models.BigIntegerField(default=0)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="subscription_due")]

    def __str__(self) -> str:
        return f"subscription {self.pk} -> {self.url}"

    def breaker_state(self) -> BreakerState:
        return BreakerState.from_dict(self.breaker) if self.breaker else BreakerState()


class DeliveryStatus(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Delivery(models.Model):
    """One attempt to deliver one batch (seqs first_seq..last_seq) to a subscription."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="deliveries")
    first_seq = models.BigIntegerField()
    last_seq = models.BigIntegerField()
    count = models.PositiveIntegerField()
    attempt = models.PositiveIntegerField(help_text="1 for the first try of this batch, then 2, 3, ...")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True, default="")
    duration_ms = models.FloatField()
    retry_after_s = models.FloatField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["subscription", "-id"], name="delivery_by_subscription"),
            models.Index(fields=["created_at"], name="delivery_created"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.first_seq}..{self.last_seq} #{self.attempt} {self.status}"
