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
