"""Failure recordings: the traffic and the monitor's inputs around a failure, kept with it for replay."""

from __future__ import annotations

from django.db import models


class FailureRecording(models.Model):
    """One bounded recording (observability/recording.py); `data` is the document GET .../recording serves.

    At most one per failure: recording again replaces it.
    """

    failure = models.OneToOneField("healing.FailureRecord", on_delete=models.CASCADE, related_name="recording")
    source_id = models.BigIntegerField(null=True, db_index=True)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    judgements = models.PositiveIntegerField(default=0)
    size_bytes = models.PositiveIntegerField(default=0)
    truncated = models.BooleanField(default=False, help_text="Parts were left out to keep it under the size cap.")
    data = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"recording of failure {self.failure_id} ({self.judgements} judgements, {self.size_bytes} bytes)"
