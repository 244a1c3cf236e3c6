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
    UPSTREAM_FORBIDDEN = "upstream_forbidden", "Upstream address forbidden"
    # Raised ahead of the hysteresis by engines/forecasts.py: the trend or the rate says it will degrade.
    PREDICTED_DEGRADATION = "predicted_degradation", "Predicted degradation"


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
    # The failure queue (healing/queue.py): severity x tenant tier, and
    # whether RCA and healing still have to look at it.
    severity = models.PositiveSmallIntegerField(default=1)
    priority = models.PositiveIntegerField(default=1)
    analysis_due = models.BooleanField(default=True)
    # Automatic healing attempts so far; past the limit a person is asked.
    attempts = models.PositiveSmallIntegerField(default=0)
    needs_operator = models.BooleanField(default=False)
    resolved_by = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-last_seen", "-id"]
        indexes = [models.Index(fields=["analysis_due", "-priority", "first_seen"], name="failure_queue")]
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
    RETRY_BACKOFF = "retry_backoff", "Retry with backoff"
    GAP_FILL_POLL = "gap_fill_poll", "Gap-fill poll"
    SWITCH_TO_POLLING = "switch_to_polling", "Switch to polling"
    KEEP_POLLING = "keep_polling", "Keep polling"
    HOLD_IN_POLLING = "hold_in_polling", "Hold in polling"
    SLOW_POLLING = "slow_polling", "Slow polling down"
    RESET_CIRCUIT_BREAKER = "reset_circuit_breaker", "Reset the circuit breaker"
    WAIT_FOR_UPSTREAM = "wait_for_upstream", "Wait for the upstream"
    PAUSE_SOURCE = "pause_source", "Pause the source"
    ROTATE_WEBHOOK_SECRET = "rotate_webhook_secret", "Rotate the webhook secret"
    NOTIFY_OPERATOR = "notify_operator", "Ask an operator"


class RCAResult(models.Model):
    """One root-cause analysis of a failure: the rules' ranking, the learner's, and the operator's word."""

    failure = models.ForeignKey(FailureRecord, on_delete=models.CASCADE, related_name="analyses")
    source = models.ForeignKey(
        "engines.Source", null=True, blank=True, on_delete=models.CASCADE, related_name="analyses"
    )
    category = models.CharField(max_length=32)
    confidence = models.FloatField()
    evidence = models.JSONField(default=list)
    rule = models.CharField(max_length=64, blank=True, default="")
    rules_version = models.CharField(max_length=32)
    # Every category the rules found, best first: [{category, confidence, rule}].
    alternatives = models.JSONField(default=list)
    # The context the rules saw, flattened: replayable, and the learner's input.
    features = models.JSONField(default=dict)
    # The learner's view when it had enough confirmed cases: {category, probabilities, reranked}.
    learner = models.JSONField(null=True, blank=True)
    confirmed_category = models.CharField(max_length=32, blank=True, default="")
    confirmed_by = models.CharField(max_length=200, blank=True, default="")
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirm_note = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["confirmed_category", "-id"], name="rca_confirmed")]

    def __str__(self) -> str:
        return f"{self.category} ({self.confidence:.2f})"

    @property
    def confirmed(self) -> bool:
        return bool(self.confirmed_category)


class StrategyStats(models.Model):
    """Observed outcomes of one strategy for one category: the bandit's Beta posterior."""

    category = models.CharField(max_length=32)
    strategy = models.CharField(max_length=32)
    successes = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["category", "strategy"]
        constraints = [models.UniqueConstraint(fields=["category", "strategy"], name="one_stats_row_per_pair")]

    def __str__(self) -> str:
        return f"{self.category}/{self.strategy} {self.successes}:{self.failures}"


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
    # Set when healing proposed it for a failure (not for a held reconciliation).
    failure = models.ForeignKey(
        FailureRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="healing_actions"
    )
    category = models.CharField(max_length=32, blank=True, default="")
    # Verification: from verify_after, until verify_deadline, is the source well again?
    verify_after = models.DateTimeField(null=True, blank=True)
    verify_deadline = models.DateTimeField(null=True, blank=True, db_index=True)
    # Escalation of an unanswered request: the level reached and when the next is due.
    escalation_level = models.PositiveSmallIntegerField(default=0)
    next_escalation_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # The strategy version its source ran under when healing chose it (its outcome is judged on this row).
    strategy_version_id = models.BigIntegerField(null=True, blank=True)

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


class HealingEventKind(models.TextChoices):
    REQUESTED = "requested", "Requested"
    STARTED = "started", "Started"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    ESCALATED = "escalated", "Escalated"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    # The judgement waits: the policy, not the stream, keeps the source from proving it.
    DEFERRED = "deferred", "Verification deferred"


class HealingEvent(models.Model):
    """The audit trail of a healing action: who did what, when and why (one row per step)."""

    action = models.ForeignKey(HealingAction, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=HealingEventKind.choices)
    actor = models.CharField(max_length=200)
    note = models.TextField(blank=True, default="")
    detail = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.kind} by {self.actor}"
