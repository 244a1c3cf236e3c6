"""RCA rules as data: which facts point at which root cause, how surely, and what to say.

Pure data (no Django). Each rule has an id and a version; the set has a
version of its own (`RULES_VERSION`), stored with every result, so an
analysis can be replayed against the rules that made it. A rule matches when
all its conditions hold over the flat feature dict built by
`healing.rca.context` (see `healing.rca.engine.FEATURES` for the names).
Evidence templates are `str.format` strings over the same features.

Change a rule: bump its version and `RULES_VERSION`, and keep its test in
tests/healing/test_rca_rules.py (every rule id must have a case there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from healing.schemas import RCACategory as C

Op = Literal["eq", "ne", "in", "gte", "lte", "true", "false", "mentions"]

RULES_VERSION = "2026.12.6"


@dataclass(frozen=True)
class Condition:
    feature: str
    op: Op
    value: object = None


@dataclass(frozen=True)
class Rule:
    id: str
    version: int
    category: C
    when: tuple[Condition, ...]
    confidence: float
    evidence: str


def _kind(*kinds: str) -> Condition:
    return Condition("kind", "in", kinds)


RULES: tuple[Rule, ...] = (
    # -- the upstream host -------------------------------------------------------
    Rule(
        "unavailable.direct",
        1,
        C.UPSTREAM_UNAVAILABLE,
        (_kind("upstream_unavailable"),),
        0.8,
        "{host} refused or failed the call (HTTP {http_status}): {error}",
    ),
    Rule(
        "unavailable.shared_host",
        1,
        C.UPSTREAM_UNAVAILABLE,
        (_kind("upstream_unavailable", "upstream_timeout"), Condition("host_sources", "gte", 2)),
        0.95,
        "{host} is failing for {host_sources} sources in {host_tenants} tenants: one upstream outage, "
        "not {host_sources} separate problems",
    ),
    Rule(
        "silent.host_down",
        1,
        C.UPSTREAM_UNAVAILABLE,
        (_kind("stream_silent", "stream_gaps"), Condition("host_down", "true")),
        0.9,
        "push went quiet while calls to {host} fail too ({host_kinds}): the upstream is down, not only its stream",
    ),
    Rule(
        "timeout.direct",
        1,
        C.UPSTREAM_TIMEOUT,
        (_kind("upstream_timeout"),),
        0.85,
        "{host} did not answer in time: {error}",
    ),
    Rule(
        "rate_limited.direct",
        1,
        C.RATE_LIMITED,
        (_kind("rate_limited"),),
        0.9,
        "{host} answered 429 (Retry-After {retry_after_s}s), {occurrences} times",
    ),
    Rule(
        "auth.direct",
        1,
        C.AUTH_FAILED,
        (_kind("auth_failed"),),
        0.9,
        "{host} refused the credentials (HTTP {http_status})",
    ),
    Rule(
        "auth.after_config_change",
        1,
        C.AUTH_FAILED,
        (_kind("auth_failed"), Condition("config_changed_recently", "true")),
        0.97,
        "the source's config changed {config_changed_s}s before the failure: the credentials most likely went with it",
    ),
    # -- the data ----------------------------------------------------------------
    Rule(
        "schema.feed",
        1,
        C.SCHEMA_INVALID,
        (_kind("schema_invalid"), Condition("path", "ne", "push")),
        0.85,
        "the upstream's feed broke its contract: {error}",
    ),
    Rule(
        "schema.push",
        1,
        C.SCHEMA_INVALID,
        (_kind("schema_invalid"), Condition("path", "eq", "push")),
        0.85,
        "pushed batches were refused as invalid: {push_errors} of {push_total} pushes failed validation",
    ),
    Rule(
        "stream.push_errors",
        1,
        C.SCHEMA_INVALID,
        (_kind("stream_silent", "stream_gaps"), Condition("push_error_rate", "gte", 0.2)),
        0.8,
        "{push_errors} of {push_total} pushes were refused as invalid while the stream degraded",
    ),
    # A drift right after the source's upstream failed or its pushes went
    # missing is that failure's consequence: naming it "silent changes"
    # would send the operator to the wrong upstream team.
    Rule(
        "drift.after_outage",
        1,
        C.UPSTREAM_UNAVAILABLE,
        (
            _kind("reconciliation_drift"),
            Condition("source_failure_kinds", "mentions", ("upstream_unavailable", "upstream_timeout")),
        ),
        0.92,
        "the snapshot differs in {drift_total} records right after the upstream failed ({source_failure_kinds}): "
        "changes made while it was down had not arrived yet",
    ),
    # Refused pushes leave gaps too: a drift after them is the refusal's
    # consequence, whatever the gaps say (so above drift.after_gaps).
    Rule(
        "drift.after_refused_pushes",
        1,
        C.SCHEMA_INVALID,
        (_kind("reconciliation_drift"), Condition("source_failure_kinds", "mentions", ("schema_invalid",))),
        0.93,
        "the snapshot differs in {drift_total} records while the source's pushes were refused as invalid "
        "({source_failure_kinds}): the refused changes, not silent upstream changes",
    ),
    Rule(
        "drift.after_gaps",
        1,
        C.STREAM_GAPS,
        (_kind("reconciliation_drift"), Condition("source_failure_kinds", "mentions", ("stream_gaps",))),
        0.92,
        "the snapshot differs in {drift_total} records while the stream was losing sequence numbers: "
        "dropped pushes, not silent upstream changes",
    ),
    Rule(
        "drift.silent_changes",
        1,
        C.RECONCILIATION_DRIFT,
        (_kind("reconciliation_drift"), Condition("in_mode_switch_window", "false")),
        0.9,
        "the snapshot differs in {drift_total} records with no mode switch nearby: the upstream changed "
        "records without sending events",
    ),
    Rule(
        "drift.switch_window",
        1,
        C.RECONCILIATION_DRIFT,
        (_kind("reconciliation_drift"), Condition("in_mode_switch_window", "true")),
        0.75,
        "the snapshot differs in {drift_total} records, around {recent_switches} mode switches: "
        "changes slipped through a switch",
    ),
    # -- the stream --------------------------------------------------------------
    # Flapping the thresholds or a healing hold contained (the mode never
    # flapped): the push itself came and went. First, so its evidence leads.
    Rule(
        "flapping.push",
        1,
        C.FLAPPING,
        (_kind("flapping"), Condition("push_silences", "gte", 1)),
        0.95,
        "the push went quiet again {push_silences} times within the flap window while polling carried the data: "
        "the upstream's push comes and goes",
    ),
    Rule("flapping.direct", 1, C.FLAPPING, (_kind("flapping"),), 0.95, "{recent_switches} mode switches in 10 minutes"),
    Rule(
        "flapping.switches",
        1,
        C.FLAPPING,
        (_kind("stream_silent", "stream_gaps"), Condition("recent_switches", "gte", 4)),
        0.85,
        "the stream went quiet again after {recent_switches} mode switches in 10 minutes: it comes and goes",
    ),
    Rule(
        "silent.direct",
        1,
        C.STREAM_SILENT,
        (_kind("stream_silent"),),
        0.75,
        "no push for {silence_s}s against a rhythm of {expected_interval_s}s while the feed answers",
    ),
    Rule(
        "gaps.direct",
        1,
        C.STREAM_GAPS,
        (_kind("stream_gaps"),),
        0.8,
        "{missing} sequence numbers missing after {contiguous_seq} (highest seen {highest_seq})",
    ),
    # -- what healing cannot name ----------------------------------------------------
    Rule(
        "request.rejected",
        1,
        C.UNKNOWN,
        (_kind("poll_error"),),
        0.5,
        "{host} rejected the request itself (HTTP {http_status}): check the source's URLs",
    ),
    Rule(
        "request.forbidden",
        1,
        C.UNKNOWN,
        (_kind("upstream_forbidden"),),
        0.9,
        "{host} resolves to an address the outbound guard refuses: fix the source's URL or allow it "
        "in BEASTFLOW_UPSTREAM_ALLOW (see docs/security.md)",
    ),
    Rule(
        "callback.failing",
        1,
        C.UNKNOWN,
        (_kind("callback_failing"),),
        0.5,
        "a subscriber's callback endpoint keeps failing: {error}",
    ),
)
