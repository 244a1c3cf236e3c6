"""docker compose --profile observability: Prometheus and Grafana provisioned from ops/, scraping every process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_prometheus_and_grafana_come_with_the_profile_only_and_mount_ops() -> None:
    services = _compose()["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["observability"], name
        for volume in services[name]["volumes"]:
            source = volume.split(":", 1)[0]
            assert (ROOT / source).exists(), (name, volume)
    assert all("profiles" not in services[name] for name in ("web", "worker", "beat"))


def test_every_app_process_writes_metrics_and_prometheus_scrapes_each_container() -> None:
    services = _compose()["services"]
    scrape = yaml.safe_load((ROOT / "ops" / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in scrape["scrape_configs"] for config in job["static_configs"] for t in config["targets"]}
    for name in ("web", "worker", "beat"):
        environment = services[name]["environment"]
        folder = environment["PROMETHEUS_MULTIPROC_DIR"]
        assert folder in services[name]["tmpfs"], name  # empty at every start
    port = services["worker"]["environment"]["BEASTFLOW_METRICS_PORT"]
    assert targets == {"web:8000", f"worker:{port}", f"beat:{port}"}
    command = services["prometheus"]["command"]
    assert "--config.file=/etc/prometheus/beastflow/prometheus.yml" in command
    assert "/etc/prometheus/beastflow/alerts.yml" in scrape["rule_files"]
