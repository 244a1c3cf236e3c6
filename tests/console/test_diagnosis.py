"""The suggested next step of a source's diagnostics: pure rules, first match wins."""

from __future__ import annotations

import pytest

from console.diagnosis import Facts, next_step


def facts(**overrides: object) -> Facts:
    base: dict[str, object] = {
        "paused": False,
        "mode": "event",
        "mode_age_s": 60.0,
        "health_score": 100,
        "last_event_age_s": 1.0,
    }
    return Facts(**(base | overrides))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "action"),
    [
        ({}, "none"),
        ({"health_score": 55}, "watch"),
        ({"mode": "hybrid"}, "wait"),
        ({"mode": "polling", "mode_age_s": 600.0}, "wait"),
        ({"mode": "polling", "mode_age_s": 7200.0}, "fix_push"),
        ({"rca": (("upstream_outage", 0.4), ("auth_failure", 0.9))}, "follow_rca"),
        ({"open_failures": ("rate_limited",)}, "lower_poll_rate"),
        ({"last_poll_status": "failed", "last_poll_error_kind": "auth_failed"}, "fix_credentials"),
        ({"last_poll_status": "failed", "last_poll_error_kind": "upstream_timeout"}, "check_upstream"),
        (
            {"awaiting_approval": (4, 9), "last_poll_status": "failed", "last_poll_error_kind": "auth_failed"},
            "decide_healing_action",
        ),
        ({"paused": True, "awaiting_approval": (4,)}, "resume"),
    ],
)
def test_the_first_matching_rule_wins(given: dict[str, object], action: str) -> None:
    assert next_step(facts(**given)).action == action


def test_the_reason_names_what_was_found() -> None:
    assert "auth_failure (90% confident)" in next_step(facts(rca=(("auth_failure", 0.9),))).why
    assert "2.0 h" in next_step(facts(mode="polling", mode_age_s=7200.0)).why
    assert "4, 9" in next_step(facts(awaiting_approval=(4, 9))).why
