"""Context gathering for RCA: the one place that reads the database (and Redis) for it.

Turns a FailureRecord into the flat feature dict the pure rules see
(healing.rca.engine.FEATURES): the failure's own detail, its upstream host
failing across sources and tenants (healing.hosts), recent mode switches,
a recent config change, the source's other failures nearby, recurrence
and periodicity.
"""

from __future__ import annotations

import itertools
import statistics
from datetime import timedelta
from typing import Any

from django.utils import timezone

from engines.connectors.http import upstream_host
from engines.models import ModeSwitch, Source
from engines.reconcile.runs import has_snapshot
from healing.hosts import host_failures
from healing.models import FailureRecord, FailureStatus

SWITCH_WINDOW = timedelta(minutes=10)
CONFIG_CHANGE_WINDOW = timedelta(minutes=10)
RECURRENCE_WINDOW = timedelta(hours=24)
# Intervals whose spread is below this share of their mean are "periodic".
PERIODIC_CV = 0.3
STREAM_KINDS = frozenset({"stream_silent", "stream_gaps", "flapping"})


def source_host(source: Source | None) -> str | None:
    if source is None:
        return None
    url = source.config.get("poll_url") or source.config.get("snapshot_url") or source.config.get("base_url")
    if not url:
        return None
    try:
        return upstream_host(str(url))
    except Exception:  # a config the connector would refuse anyway: no host to compare
        return None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def failure_features(failure: FailureRecord) -> dict[str, Any]:
    detail = failure.detail or {}
    source = failure.source
    now = timezone.now()
    host = detail.get("host") or source_host(source)
    features: dict[str, Any] = {
        "kind": failure.kind,
        "source_id": failure.source_id,
        "path": detail.get("path") or ("push" if failure.kind in STREAM_KINDS else detail.get("engine", "poll")),
        "host": host,
        "http_status": detail.get("http_status"),
        "error": str(detail.get("error") or detail.get("reason") or "")[:300],
        "retry_after_s": detail.get("retry_after_s"),
        "occurrences": failure.occurrences,
        "source_mode": source.mode if source else None,
        "reconcilable": has_snapshot(source) if source else False,
    }
    # The stream's signals, when the monitor reported the failure.
    signals = detail.get("signals") or {}
    measures = (detail.get("health") or {}).get("measures") or {}
    push_total = int(signals.get("push_total") or 0)
    push_errors = int(signals.get("push_errors") or 0)
    features.update(
        push_total=push_total,
        push_errors=push_errors,
        push_error_rate=round(push_errors / push_total, 3) if push_total else 0.0,
        silence_s=_round(measures.get("silence_s")),
        expected_interval_s=_round(signals.get("expected_interval_s")),
        contiguous_seq=signals.get("contiguous_seq"),
        highest_seq=signals.get("highest_seq"),
        missing=detail.get("missing") or _missing(signals),
    )
    if failure.kind == "flapping":
        # The monitor's count of the push going quiet again while in polling (engines.hysteresis).
        features["push_silences"] = len(detail.get("silences") or [])
    if failure.kind == "reconciliation_drift":
        features["drift_total"] = sum(int(detail.get(k) or 0) for k in ("missing", "changed", "deleted"))
        features["in_mode_switch_window"] = bool(detail.get("in_mode_switch_window"))
    if host:
        seen = host_failures(str(host))
        features.update(host_sources=seen.sources, host_tenants=seen.tenants, host_down=seen.down)
        features["host_kinds"] = ", ".join(seen.kinds)
    if source is not None:
        # What else went wrong on this source around the failure: a drift
        # found after an outage or lost pushes is their consequence, not a
        # cause of its own.
        nearby = (
            FailureRecord.objects.filter(source=source, last_seen__gte=failure.first_seen - SWITCH_WINDOW)
            .exclude(pk=failure.pk)
            .values_list("kind", flat=True)
            .distinct()
        )
        features["source_failure_kinds"] = ", ".join(sorted(set(nearby)))
        features["recent_switches"] = ModeSwitch.objects.filter(
            source=source, at__gte=failure.last_seen - SWITCH_WINDOW
        ).count()
        changed = source.updated_at
        # Saved after creation (the monitor's own writes bypass updated_at): an operator's edit.
        if changed - source.created_at > timedelta(seconds=2) and failure.first_seen - changed < CONFIG_CHANGE_WINDOW:
            features["config_changed_recently"] = True
            features["config_changed_s"] = max(0, round((failure.first_seen - changed).total_seconds()))
    features.update(_recurrence(failure, now))
    return features


def _round(value: Any) -> float | None:
    number = _num(value)
    return None if number is None else round(number, 1)


def _missing(signals: dict[str, Any]) -> int | None:
    high = signals.get("upstream_seq") or signals.get("highest_seq")
    low = signals.get("contiguous_seq")
    if isinstance(high, int) and isinstance(low, int):
        return max(0, high - low)
    return None


def _recurrence(failure: FailureRecord, now: Any) -> dict[str, Any]:
    """How often the same problem (fingerprint) came and went in the last day, and whether on a rhythm."""
    starts = sorted(
        FailureRecord.objects.filter(
            fingerprint=failure.fingerprint,
            status=FailureStatus.RESOLVED,
            first_seen__gte=now - RECURRENCE_WINDOW,
        )
        .exclude(pk=failure.pk)
        .values_list("first_seen", flat=True)
    )
    out: dict[str, Any] = {"recurrences": len(starts), "period_s": None}
    times = [*starts, failure.first_seen]
    if len(times) >= 4:
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        mean = statistics.fmean(gaps)
        if mean > 0 and statistics.pstdev(gaps) / mean < PERIODIC_CV:
            out["period_s"] = round(mean)
    return out
