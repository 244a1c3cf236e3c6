"""The alert rules under ops/prometheus: promtool checks and unit-tests them; each alert has a runbook section."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "ops" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian: apt-get install prometheus; .ci/run tries)"
)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=RULES, capture_output=True, text=True, timeout=120, check=False)


@needs_promtool
def test_promtool_accepts_the_rules_and_the_scrape_config() -> None:
    checked = _promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = _promtool("check", "config", "--syntax-only", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


@needs_promtool
def test_the_rules_unit_tests_pass() -> None:
    tested = _promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_links_to_a_runbook_section_that_exists_and_is_tested() -> None:
    rules = yaml.safe_load((RULES / "alerts.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    # GitHub's anchors: lower case, spaces to dashes, punctuation dropped.
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in runbook.splitlines()
        if line.startswith("## ")
    }
    tests = (RULES / "alerts_test.yml").read_text()
    assert len(alerts) >= 8
    for alert in alerts:
        url = alert["annotations"]["runbook_url"]
        assert url.startswith("docs/runbook.md#"), alert["alert"]
        assert url.split("#", 1)[1] in anchors, (alert["alert"], url)
        assert f"alertname: {alert['alert']}" in tests, f"{alert['alert']} has no promtool test"
