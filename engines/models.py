"""Tenant-schema models of the data flow."""

from __future__ import annotations

from django.db import models

from engines.modes import Mode


class ModeChoices(models.TextChoices):
    EVENT = Mode.EVENT.value, "Event (push)"
    HYBRID = Mode.HYBRID.value, "Hybrid"
    POLLING = Mode.POLLING.value, "Polling"


class Source(models.Model):
    # The id comes from a public-schema SourceRoute, so it is unique across
    # tenants and a signed webhook without an API key finds its tenant.
    id = models.BigIntegerField(primary_key=True)
    name = models.CharField(max_length=200, unique=True)
    connector = models.CharField(max_length=32)
    config = models.JSONField(default=dict)
    hysteresis = models.JSONField(default=dict)
    poll = models.JSONField(default=dict)
    reconcile = models.JSONField(default=dict)
    data_schema = models.JSONField(null=True, blank=True)
    mode = models.CharField(max_length=16, choices=ModeChoices.choices, default=ModeChoices.EVENT)
    mode_since = models.DateTimeField(auto_now_add=True)
    paused = models.BooleanField(default=False)
    webhook_secret_encrypted = models.TextField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.pk})"
