"""The RCA rules (healing/rca/rules.py), each with a case, and the engine's ranking. No database."""

from __future__ import annotations

from typing import Any

import pytest

from healing.rca.engine import FEATURES, diagnose, matches, rerank
from healing.rca.rules import RULES, RULES_VERSION
from healing.schemas import RCACategory
from tests.healing.scenario_contexts import CASES

HOST = "http://upstream:9001"

# One case per rule id: features under which that rule must match.
RULE_CASES: dict[str, dict[str, Any]] = {
    "unavailable.direct": {"kind": "upstream_unavailable", "host": HOST, "http_status": 503},
    "unavailable.shared_host": {"kind": "upstream_timeout", "host": HOST, "host_sources": 3, "host_tenants": 2},
    "silent.host_down": {"kind": "stream_silent", "host": HOST, "host_down": True},
    "timeout.direct": {"kind": "upstream_timeout", "host": HOST},
    "rate_limited.direct": {"kind": "rate_limited", "host": HOST, "retry_after_s": 5},
    "auth.direct": {"kind": "auth_failed", "http_status": 401},
    "auth.after_config_change": {"kind": "auth_failed", "config_changed_recently": True, "config_changed_s": 40},
    "schema.feed": {"kind": "schema_invalid", "path": "poll"},
    "schema.push": {"kind": "schema_invalid", "path": "push"},
    "stream.push_errors": {"kind": "stream_gaps", "push_error_rate": 0.5},
    "drift.silent_changes": {"kind": "reconciliation_drift", "in_mode_switch_window": False, "drift_total": 3},
    "drift.switch_window": {"kind": "reconciliation_drift", "in_mode_switch_window": True},
    "drift.after_outage": {
        "kind": "reconciliation_drift",
        "drift_total": 9,
        "source_failure_kinds": "upstream_unavailable",
    },
    "drift.after_refused_pushes": {
        "kind": "reconciliation_drift",
        "drift_total": 13,
        "source_failure_kinds": "schema_invalid, stream_gaps",
    },
    "drift.after_gaps": {
        "kind": "reconciliation_drift",
        "drift_total": 4,
        "source_failure_kinds": "stream_gaps, stream_silent",
    },
    "flapping.push": {"kind": "flapping", "push_silences": 4, "recent_switches": 2},
    "flapping.direct": {"kind": "flapping"},
    "flapping.switches": {"kind": "stream_silent", "recent_switches": 5},
    "silent.direct": {"kind": "stream_silent"},
    "gaps.direct": {"kind": "stream_gaps", "missing": 4},
    "request.rejected": {"kind": "poll_error", "http_status": 404},
    "request.forbidden": {"kind": "upstream_forbidden", "host": "http://10.0.0.1:80"},
    "callback.failing": {"kind": "callback_failing"},
}


def test_every_rule_has_a_case_and_ids_are_unique() -> None:
    ids = [rule.id for rule in RULES]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(RULE_CASES)
    assert RULES_VERSION


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.id)
def test_each_rule_matches_its_case_and_names_its_category(rule: Any) -> None:
    # given
    features = RULE_CASES[rule.id]
    # when
    diagnoses = diagnose(features)
    # then
    assert matches(rule, features)
    found = {d.category: d for d in diagnoses}
    assert rule.category in found
    texts = [e["text"] for e in found[rule.category].evidence]
    assert any("{" not in text for text in texts)


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.id)
def test_rule_conditions_only_read_known_features(rule: Any) -> None:
    assert {c.feature for c in rule.when} <= set(FEATURES)


@pytest.mark.parametrize(("scenario", "features", "cause"), CASES, ids=[c[0] for c in CASES])
def test_each_simulator_scenario_is_explained_by_its_known_cause(
    scenario: str, features: dict[str, Any], cause: str
) -> None:
    # when
    [top, *_] = diagnose(features)
    # then
    assert top.category.value == cause, scenario
    assert top.evidence and top.confidence >= 0.7


def test_a_stream_going_quiet_while_its_host_fails_is_an_upstream_outage_not_a_silent_stream() -> None:
    # given
    features = {"kind": "stream_silent", "host": HOST, "host_down": True, "host_kinds": "upstream_unavailable"}
    # when
    ranked = diagnose(features)
    # then
    assert [d.category for d in ranked[:2]] == [RCACategory.UPSTREAM_UNAVAILABLE, RCACategory.STREAM_SILENT]


def test_the_same_host_failing_across_tenants_is_one_outage_with_that_evidence() -> None:
    # when
    [top, *_] = diagnose({"kind": "upstream_unavailable", "host": HOST, "host_sources": 4, "host_tenants": 3})
    # then
    assert top.confidence == 0.95
    assert any(e.get("kind") == "shared_host" and e["tenants"] == 3 for e in top.evidence)
    assert "4 sources in 3 tenants" in top.evidence[0]["text"]


def test_a_failure_no_rule_knows_is_unknown_with_low_confidence() -> None:
    [top] = diagnose({"kind": "something_new"})
    assert top.category is RCACategory.UNKNOWN and top.confidence < 0.5


def test_context_evidence_names_recurrence_and_period() -> None:
    [top] = diagnose({"kind": "rate_limited", "recurrences": 5, "period_s": 600})
    assert any(e["kind"] == "recurrence" and e["period_s"] == 600 for e in top.evidence)


def test_a_confident_learner_can_overrule_the_rules() -> None:
    # given: rules say stream_silent; confirmed cases say flapping
    ranked = diagnose({"kind": "stream_silent"})
    # when
    blended = rerank(ranked, {"flapping": 0.95, "stream_silent": 0.05}, weight=0.5)
    # then
    assert blended[0].category is RCACategory.FLAPPING
    assert rerank(ranked, {"flapping": 0.95}, weight=0.0)[0].category is RCACategory.STREAM_SILENT


def test_flapping_the_mode_never_showed_leads_with_the_push_coming_and_going() -> None:
    # given: contained in polling (two switches only), the push went quiet again four times
    features = {"kind": "flapping", "push_silences": 4, "recent_switches": 2}
    # when
    [top, *_] = diagnose(features)
    # then
    assert (top.category, top.rule) == (RCACategory.FLAPPING, "flapping.push@1")
    assert top.evidence[0]["text"].startswith("the push went quiet again 4 times")
    assert diagnose({"kind": "flapping", "recent_switches": 6})[0].rule == "flapping.direct@1"


def test_a_drift_after_refused_pushes_is_blamed_on_the_refusal_not_on_the_gaps_it_left() -> None:
    # given: a schema break refuses half the pushes; the refused seqs show as gaps; the snapshot differs
    refused = "schema_invalid, stream_gaps"
    features = {"kind": "reconciliation_drift", "drift_total": 13, "source_failure_kinds": refused}
    # when
    [top, second, *_] = diagnose(features)
    # then
    assert (top.category, second.category) == (RCACategory.SCHEMA_INVALID, RCACategory.STREAM_GAPS)
    assert "refused as invalid" in top.evidence[0]["text"]


def test_a_drift_found_right_after_an_outage_is_blamed_on_the_outage() -> None:
    # given: the same drift, alone and after the source's upstream failed
    drift = {"kind": "reconciliation_drift", "drift_total": 15, "in_mode_switch_window": False}
    after_outage = {**drift, "source_failure_kinds": "stream_silent, upstream_unavailable"}
    # when
    [alone, *_] = diagnose(drift)
    [top, *_] = diagnose(after_outage)
    # then
    assert alone.category is RCACategory.RECONCILIATION_DRIFT
    assert top.category is RCACategory.UPSTREAM_UNAVAILABLE
    assert "upstream_unavailable" in top.evidence[0]["text"]


def test_a_fact_gathered_as_none_reads_as_unknown_not_as_none() -> None:
    [top, *_] = diagnose({"kind": "rate_limited", "host": HOST, "retry_after_s": None, "occurrences": 3})
    assert "None" not in top.evidence[0]["text"]
    assert "Retry-After ?s" in top.evidence[0]["text"]
