"""The pure parts of tests/prometheus_server.py: Grafana's variables in PromQL, ops/'s config for a `make up`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.prometheus_server import OPS, config_for_make_up, grafana_substitute

VALUES = {"tenant": ".*", "source": "orders", "__rate_interval": "5m"}


def test_every_grafana_variable_syntax_is_replaced() -> None:
    expr = 'sum(rate(x{tenant=~"$tenant", name=~"${source}"}[$__rate_interval])) + y{s="${source:regex}"}'
    assert grafana_substitute(expr, VALUES) == 'sum(rate(x{tenant=~".*", name=~"orders"}[5m])) + y{s="orders"}'


def test_a_variable_is_replaced_whole_not_by_a_shorter_name() -> None:
    # $tenant_id is not $tenant followed by "_id"
    with pytest.raises(KeyError, match="tenant_id"):
        grafana_substitute('x{t=~"$tenant_id"}', VALUES)


def test_an_expression_without_variables_is_unchanged() -> None:
    expr = "histogram_quantile(0.95, sum by (le) (rate(beastflow_poll_duration_seconds_bucket[1m])))"
    assert grafana_substitute(expr, VALUES) == expr


def test_the_make_up_config_keeps_the_web_job_and_the_rules_with_the_target_and_intervals_changed() -> None:
    ops = yaml.safe_load((OPS / "prometheus.yml").read_text())

    config = config_for_make_up(ops, web="127.0.0.1:8123", rules=Path("/checkout/ops/prometheus"), interval_s=0.5)

    assert config["global"]["scrape_interval"] == config["global"]["evaluation_interval"] == "500ms"
    assert config["rule_files"] == ["/checkout/ops/prometheus/alerts.yml"]
    [job] = config["scrape_configs"]
    assert job["job_name"] == "beastflow-web"
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:8123"]}]
    # the ops file itself is left as it was
    assert [j["job_name"] for j in ops["scrape_configs"]] == ["beastflow-web", "beastflow-worker", "beastflow-beat"]
    assert ops["scrape_configs"][0]["static_configs"] == [{"targets": ["web:8000"]}]


def test_a_config_without_the_web_job_is_refused() -> None:
    with pytest.raises(ValueError, match="beastflow-web"):
        config_for_make_up({"scrape_configs": []}, web="h:1", rules=Path("/r"), interval_s=1)
