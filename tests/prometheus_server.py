"""A real Prometheus server for tests: its config derived from ops/prometheus, started in a tmp dir, queried over HTTP.

Used by tests/e2e/test_prometheus_dashboards.py. The pure parts (the config
for a `make up`-like stack, Grafana's variables in a panel's PromQL) are
unit-tested in tests/observability/test_prometheus_server.py.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.stack import free_port, stop, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
OPS = ROOT / "ops" / "prometheus"
PROMETHEUS = shutil.which("prometheus")
WEB_JOB = "beastflow-web"

# $name, ${name} and ${name:format} (Grafana's variable syntaxes; [[name]] is deprecated and unused here).
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def grafana_substitute(expr: str, values: Mapping[str, str]) -> str:
    """`expr` with Grafana's template variables replaced by `values`; an unknown variable is an error.

    Longest names are not a concern: the pattern takes a whole word after `$`.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def config_for_make_up(ops: Mapping[str, Any], *, web: str, rules: Path, interval_s: float) -> dict[str, Any]:
    """ops/prometheus/prometheus.yml for a `make up` whose web listens at `web` (host:port).

    The same rules (at their path in the checkout) and the web job with its
    target changed; the worker and beat jobs go, because under `make up` every
    process writes to one folder that the web's /metrics serves (scraping a
    worker's port too would count its work twice). Intervals shortened to
    `interval_s` so a test sees rates within seconds.
    """
    config = copy.deepcopy(dict(ops))
    every = f"{int(interval_s * 1000)}ms"
    config["global"] = {**config.get("global", {}), "scrape_interval": every, "evaluation_interval": every}
    config["rule_files"] = [str(rules / Path(path).name) for path in config.get("rule_files", [])]
    jobs = [job for job in config["scrape_configs"] if job["job_name"] == WEB_JOB]
    if len(jobs) != 1:
        raise ValueError(f"expected one {WEB_JOB} job in the ops config")
    jobs[0]["static_configs"] = [{"targets": [web]}]
    config["scrape_configs"] = jobs
    return config


class Prometheus:
    def __init__(self, url: str, process: subprocess.Popen[bytes]) -> None:
        self.url = url
        self.process = process

    def api(self, path: str, **params: str) -> Any:
        answer = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = answer.json()
        assert body.get("status") == "success", (path, params, body)
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar as one sample) `expr` gives now."""
        data = self.api("query", query=expr)
        if data["resultType"] == "vector":
            return list(data["result"])
        return [{"metric": {}, "value": data["result"]}]

    def wait(self, what: str, condition: Any, *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert self.process.poll() is None, "prometheus exited"
            assert time.monotonic() < deadline, f"prometheus: {what} not within {timeout_s} s"
            time.sleep(0.25)

    def targets_up(self) -> bool:
        active = self.api("targets")["activeTargets"]
        return bool(active) and all(target["health"] == "up" for target in active)


@contextmanager
def run_prometheus(tmp_path: Path, *, web: str, interval_s: float = 1.0) -> Iterator[Prometheus]:
    """A Prometheus scraping the web at `web` with ops/'s rules, on a free port, until the block ends."""
    assert PROMETHEUS is not None
    tmp_path.mkdir(parents=True, exist_ok=True)
    ops = yaml.safe_load((OPS / "prometheus.yml").read_text())
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config_for_make_up(ops, web=web, rules=OPS, interval_s=interval_s)))
    port = free_port()
    argv = [
        PROMETHEUS,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(argv, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    server = Prometheus(f"http://127.0.0.1:{port}", process)
    try:
        wait_healthy(server.url, [process], path="/-/ready")
        yield server
    finally:
        stop([process])
        log.close()
