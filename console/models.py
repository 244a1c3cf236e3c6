"""Tenant-schema rows of the console: what operators did, for the audit trail."""

from __future__ import annotations

from django.db import models


class OperatorActionKind(models.TextChoices):
    PAUSE = "pause", "Pause"
    RESUME = "resume", "Resume"
    POLL_NOW = "poll_now", "Poll now"
    RECONCILE_NOW = "reconcile_now", "Reconcile now"
    FORCE_MODE = "force_mode", "Force mode"


class OperatorAction(models.Model):
    """One action an operator took from the console, written in the same transaction as its effect."""

    # The username, not a foreign key: users live in the public schema, and
    # the audit row must outlive the account.
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=32, choices=OperatorActionKind.choices)
    source = models.ForeignKey(
        "engines.Source", null=True, blank=True, on_delete=models.SET_NULL, related_name="operator_actions"
    )
    # Kept beside the foreign key so the row still names its source after a delete.
    source_name = models.CharField(max_length=200, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    correlation_id = models.CharField(max_length=128, blank=True, default="", db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # What the action changed or started (the mode moved to, the run queued...).
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["source", "-created_at"], name="opaction_source_created")]

    def __str__(self) -> str:
        return f"{self.actor}: {self.action} ({self.source_name or '-'})"
