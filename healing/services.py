"""Writes on failures: every engine reports what went wrong through here."""

from __future__ import annotations

from typing import Any

import structlog
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from beastflow import correlation
from healing.models import FailureRecord, FailureStatus
from healing.schemas import FailureReport

log = structlog.get_logger(__name__)


def failure_report(
    *,
    kind: str,
    source_id: int | None = None,
    identity: dict[str, Any] | None = None,
    detail: dict[str, Any] | None = None,
) -> FailureRecord:
    """Record a failure; a repeat of an open one (same fingerprint) folds into its occurrences.

    The newest detail replaces the stored one, so the record shows the
    latest context; first_seen and the count keep the history.
    """
    report = FailureReport(kind=kind, source_id=source_id, identity=identity or {}, detail=detail or {})
    fingerprint = report.fingerprint()
    now = timezone.now()
    for _ in range(2):  # a concurrent first report can win the insert: then fold into it
        updated = FailureRecord.objects.filter(fingerprint=fingerprint, status=FailureStatus.OPEN).update(
            occurrences=F("occurrences") + 1, last_seen=now, detail=report.detail
        )
        if updated:
            record = FailureRecord.objects.get(fingerprint=fingerprint, status=FailureStatus.OPEN)
            break
        try:
            with transaction.atomic():
                record = FailureRecord.objects.create(
                    source_id=source_id,
                    kind=kind,
                    fingerprint=fingerprint,
                    first_seen=now,
                    last_seen=now,
                    detail=report.detail,
                    correlation_id=correlation.current() or "",
                )
            break
        except IntegrityError:
            continue
    log.info("failure_reported", kind=kind, source=source_id, occurrences=record.occurrences)
    return record


def failure_resolve(*, source_id: int | None, kind: str) -> int:
    """Close the open failures of a kind on a source (it works again)."""
    open_failures = FailureRecord.objects.filter(kind=kind, status=FailureStatus.OPEN)
    if source_id is None:
        open_failures = open_failures.filter(source__isnull=True)
    else:
        open_failures = open_failures.filter(source_id=source_id)
    closed = open_failures.update(status=FailureStatus.RESOLVED, last_seen=timezone.now())
    if closed:
        log.info("failure_resolved", kind=kind, source=source_id, count=closed)
    return closed
