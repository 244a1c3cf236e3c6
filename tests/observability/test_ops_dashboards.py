"""The Grafana dashboards under ops/grafana: their structure; every query parses (promtool) and names real metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "ops" / "grafana" / "dashboards"
EXPECTED = {"overview", "source", "ingest", "workers", "healing"}
DATASOURCE_UID = "beastflow-prometheus"
# Grafana's own variables, replaced by what they stand for before parsing.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "rate", "increase", "irate", "histogram_quantile",
    "topk", "bottomk", "and", "or", "unless", "on", "ignoring", "group_left", "group_right", "le", "offset",
}  # fmt: skip


def _dashboards() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def _exprs() -> list[tuple[str, str, str]]:
    found = []
    for name, board in _dashboards().items():
        for panel in board["panels"]:
            for target in panel["targets"]:
                found.append((name, panel["title"], target["expr"]))
    return found


def _known_metrics() -> set[str]:
    """Every metric BeastFlow defines (in its code) or records (rules), with the histogram series."""
    names: set[str] = set()
    for folder in ("beastflow", "engines", "healing", "callbacks", "scheduling", "tenants", "observability", "console"):
        for path in (ROOT / folder).rglob("*.py"):
            names.update(re.findall(r"\"(beastflow_[a-z_]+)\"", path.read_text()))
    names |= {f"{n}{suffix}" for n in set(names) for suffix in ("_bucket", "_sum", "_count")}
    rules = yaml.safe_load((ROOT / "ops" / "prometheus" / "alerts.yml").read_text())
    names |= {rule["record"] for group in rules["groups"] for rule in group["rules"] if "record" in rule}
    return names | {"up"}


def _plain(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def test_the_five_dashboards_are_there_with_unique_ids_and_a_provisioned_datasource() -> None:
    boards = _dashboards()
    assert set(boards) == EXPECTED
    assert len({board["uid"] for board in boards.values()}) == len(boards)
    for name, board in boards.items():
        assert board["title"].startswith("BeastFlow / "), name
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == DATASOURCE_UID, (name, panel["title"])
            assert panel["targets"], (name, panel["title"])
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, (name, panel["title"])
    provisioned = yaml.safe_load((ROOT / "ops/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert provisioned["datasources"][0]["uid"] == DATASOURCE_UID


def test_every_query_names_only_metrics_beastflow_exports() -> None:
    known = _known_metrics()
    for name, title, expr in _exprs():
        without_strings = re.sub(r'"[^"]*"', '""', _plain(expr))
        without_labels = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", without_strings)  # matchers and ranges
        without_grouping = re.sub(r"\b(by|without)\s*\([^)]*\)", "", without_labels)
        words = set(re.findall(r"(?<![0-9.])[a-zA-Z_:][a-zA-Z0-9_:]*", without_grouping))
        metrics = words - PROMQL_WORDS
        assert metrics, (name, title, expr)
        unknown = metrics - known
        assert not unknown, f"{name} / {title}: {sorted(unknown)} in {expr}"


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool is not installed (Debian: apt-get install prometheus)"
)
def test_every_query_parses_as_promql(tmp_path: Path) -> None:
    # promtool parses the expressions of a rules file: each query becomes a recording rule.
    rules = [
        {"record": f"dashboard_check:{index}", "expr": _plain(expr)} for index, (_, _, expr) in enumerate(_exprs())
    ]
    path = tmp_path / "dashboards_as_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    checked = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(rules)} rules found" in checked.stdout
