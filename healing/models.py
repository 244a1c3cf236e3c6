"""Tenant-schema models of failures, their analysis and their healing."""

from __future__ import annotations

from django.db import models


class FailureKind(models.TextChoices):
    POLL_ERROR = "poll_error", "Poll error"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable", "Upstream unavailable"
    UPSTREAM_TIMEOUT = "upstream_timeout", "Upstream timeout"
    RATE_LIMITED = "rate_limited", "Rate limited"
    AUTH_FAILED = "auth_failed", "Authentication failed"
    STREAM_SILENT = "stream_silent", "Stream silent"
    STREAM_GAPS = "stream_gaps", "Sequence gaps"
    SCHEMA_INVALID = "schema_invalid", "Schema rejection"
    RECONCILIATION_DRIFT = "reconciliation_drift", "Reconciliation drift"
    FLAPPING = "flapping", "Flapping"
    CALLBACK_FAILING = "callback_failing", "Callback endpoint failing"


class FailureStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"


class FailureRecord(models.Model):
    source = models.ForeignKey(
        "engines.Source", null=True, blank=True, on_delete=models.CASCADE, related_name="failures"
    )
    kind = models.CharField(max_length=32, choices=FailureKind.choices)
    # Same fingerprint = the same problem again: it folds into occurrences.
    fingerprint = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=16, choices=FailureStatus.choices, default=FailureStatus.OPEN)
    occurrences = models.PositiveIntegerField(default=1)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    detail = models.JSONField(default=dict)
    correlation_id = models.CharField(max_length=128, blank=True, default="")

    class Meta:
        ordering = ["-last_seen", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["fingerprint"],
                condition=models.Q(status="open"),
                name="one_open_failure_per_fingerprint",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} x{self.occurrences}"


class HealingStrategy(models.TextChoices):
    FULL_RECONCILE = "full_reconcile", "Full reconciliation"


class HealingRisk(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class HealingStatus(models.TextChoices):
    PROPOSED = "proposed", "Proposed"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ESCALATED = "escalated", "Escalated"


class HealingAction(models.Model):
    """A healing step for a source; the risky ones wait for an operator's decision.

    `detail` says what the action would do (for full_reconcile: the held
    run and its dry-run diff summary); `outcome` says what it did.
    """

    source = models.ForeignKey(
        "engines.Source", null=True, blank=True, on_delete=models.CASCADE, related_name="healing_actions"
    )
    # The RCA that proposed it. A plain column until the RCA model lands,
    # which turns it into a ForeignKey on the same column.
    rca_id = models.BigIntegerField(null=True, blank=True)
    strategy = models.CharField(max_length=32, choices=HealingStrategy.choices)
    risk = models.CharField(max_length=8, choices=HealingRisk.choices)
    status = models.CharField(max_length=24, choices=HealingStatus.choices)
    requested_at = models.DateTimeField()
    decided_by = models.CharField(max_length=200, blank=True, default="")
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True, default="")
    detail = models.JSONField(default=dict, blank=True)
    outcome = models.JSONField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # Repeated proposals of one strategy for one source fold into the
            # one waiting for a decision, so operators are not asked twice.
            models.UniqueConstraint(
                fields=["source", "strategy"],
                condition=models.Q(status="awaiting_approval"),
                name="one_awaiting_action_per_source_strategy",
            )
        ]
        indexes = [models.Index(fields=["status", "-id"], name="healing_action_status")]

    def __str__(self) -> str:
        return f"{self.strategy} {self.status}"
