"""Feature dicts as healing.rca.context builds them for each failure the simulator causes.

Recorded from the failures of the end-to-end runs (bench/healing.py), trimmed
to what the rules read. Each entry: (scenario, failure kind, features, the
scenario's known cause).
"""

from __future__ import annotations

from typing import Any

HOST = "http://127.0.0.1:9001"

CASES: list[tuple[str, dict[str, Any], str]] = [
    # outage: push and feed down together; the stream failure is explained by the host.
    (
        "outage/stream",
        {"kind": "stream_silent", "path": "push", "host": HOST, "host_down": True, "host_sources": 1,
         "host_tenants": 1, "host_kinds": "upstream_unavailable", "silence_s": 3.1, "expected_interval_s": 0.5,
         "source_mode": "hybrid", "recent_switches": 1},
        "upstream_unavailable",
    ),
    (
        "outage/poll",
        {"kind": "upstream_unavailable", "path": "poll", "host": HOST, "http_status": 503, "host_down": True,
         "host_sources": 2, "host_tenants": 2, "error": "HTTP 503", "source_mode": "polling"},
        "upstream_unavailable",
    ),
    (
        "flapping/switches",
        {"kind": "stream_silent", "path": "push", "host": HOST, "host_sources": 0, "host_down": False,
         "recent_switches": 6, "silence_s": 2.0, "source_mode": "hybrid"},
        "flapping",
    ),
    (
        "flapping/direct",
        {"kind": "flapping", "path": "push", "host": HOST, "recent_switches": 5, "source_mode": "polling"},
        "flapping",
    ),
    (
        "drops",
        {"kind": "stream_gaps", "path": "push", "host": HOST, "missing": 3, "contiguous_seq": 120,
         "highest_seq": 123, "recent_switches": 0, "source_mode": "event"},
        "stream_gaps",
    ),
    (
        "drops/drift",
        {"kind": "reconciliation_drift", "path": "reconcile", "host": HOST, "drift_total": 5,
         "in_mode_switch_window": False, "source_failure_kinds": "stream_gaps", "source_mode": "event"},
        "stream_gaps",
    ),
    (
        "outage/drift",
        {"kind": "reconciliation_drift", "path": "reconcile", "host": HOST, "drift_total": 15,
         "in_mode_switch_window": False, "recent_switches": 1,
         "source_failure_kinds": "stream_silent, upstream_unavailable", "source_mode": "event"},
        "upstream_unavailable",
    ),
    (
        "429 storm",
        {"kind": "rate_limited", "path": "reconcile", "host": HOST, "http_status": 429, "retry_after_s": 2,
         "occurrences": 4, "source_mode": "event"},
        "rate_limited",
    ),
    (
        "401",
        {"kind": "auth_failed", "path": "reconcile", "host": HOST, "http_status": 401, "source_mode": "event"},
        "auth_failed",
    ),
    (
        "schema break/push",
        {"kind": "schema_invalid", "path": "push", "host": HOST, "push_errors": 9, "push_total": 20,
         "push_error_rate": 0.45, "source_mode": "hybrid"},
        "schema_invalid",
    ),
    (
        "schema break/feed",
        {"kind": "schema_invalid", "path": "poll", "host": HOST, "http_status": 200,
         "error": "event 3: key is required", "source_mode": "polling"},
        "schema_invalid",
    ),
    (
        "silent drift",
        {"kind": "reconciliation_drift", "path": "reconcile", "host": HOST, "drift_total": 7,
         "in_mode_switch_window": False, "recent_switches": 0, "source_mode": "event"},
        "reconciliation_drift",
    ),
]  # fmt: skip
