"""/metrics for every process: the web's own, each worker's and beat's, summed.

Celery's workers (the monitor, polls, reconciliation, healing, callbacks)
and beat are separate processes; a counter incremented there lives in their
memory, which the web process serving /metrics never sees. With
prometheus_client's multiprocess mode every process writes its values to
memory-mapped files in one shared folder, PROMETHEUS_MULTIPROC_DIR, and
/metrics reads them all (MultiProcessCollector): counters and histograms are
summed across processes, each gauge by its `multiprocess_mode`.

The launcher sets the folder for web, worker and beat and empties it when
`up` starts (docs/observability.md). The variable must be set before
prometheus_client is first imported: it picks its storage at import.
Without it, every process keeps its own values and /metrics shows the web
process only, as before.

Scrape-time collectors (gauges read from the database or the broker when
/metrics is asked, such as the queue depths and the sources per mode) are
registered on the default registry by their apps; this view serves them
next to the aggregated files, once.

With BEASTFLOW_METRICS_TOKEN set, /metrics answers only a request with
`Authorization: Bearer <token>` (compared in constant time), 401 otherwise
(docs/observability.md); unset, it is open, as a scrape target on a private
network usually is.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class _ScrapeTimeCollectors(Collector):
    """The default registry's collectors that compute at scrape time, without its in-process metrics.

    In multiprocess mode the in-process Counter/Histogram/Gauge objects
    (MetricWrapperBase) are exported from the files, every process's values
    summed; collecting them from the registry too would report this process's
    share a second time. Everything else (custom collectors, the Python and
    process info of the web process) comes from the registry as is.
    """

    def collect(self) -> Iterator[Metric]:
        # prometheus_client has no public list of a registry's collectors;
        # this attribute has held them since its first multiprocess release.
        with REGISTRY._lock:
            collectors = list(REGISTRY._collector_to_names)
        for collector in collectors:
            if isinstance(collector, MetricWrapperBase):
                continue
            yield from collector.collect()


def scrape_registry() -> CollectorRegistry:
    """What /metrics serves: every process's metrics in multiprocess mode, else this process's."""
    if multiprocess_dir() is None:
        return REGISTRY
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(_ScrapeTimeCollectors())
    return registry


TOKEN_ENV = "BEASTFLOW_METRICS_TOKEN"  # noqa: S105 (the variable's name, not a secret)


def scrape_allowed(authorization: str | None, token: str) -> bool:
    """True when no token is configured, or `authorization` is `Bearer <token>` (constant-time compare)."""
    if not token:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not scrape_allowed(request.headers.get("Authorization"), os.environ.get(TOKEN_ENV, "").strip()):
        from beastflow.problems import problem_response

        return problem_response(
            401, "Send the metrics token: Authorization: Bearer <token>.", headers={"WWW-Authenticate": "Bearer"}
        )
    return HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)


PORT_ENV = "BEASTFLOW_METRICS_PORT"


def serve_process_metrics(role: str) -> int | None:
    """With BEASTFLOW_METRICS_PORT set, serve this process group's folder on that port; the port, or None.

    For workers and beat in containers of their own (docker compose, Kubernetes),
    where the web's /metrics cannot read their folder: each serves what its own
    processes wrote (the Celery pool's processes summed), and Prometheus sums the
    containers. Only the folder: the scrape-time gauges come from the web's /metrics.
    """
    raw = os.environ.get(PORT_ENV, "").strip()
    if not raw or multiprocess_dir() is None:
        return None
    from prometheus_client import start_http_server

    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    port = int(raw)
    start_http_server(port, addr=os.environ.get("BEASTFLOW_METRICS_ADDR", "0.0.0.0"), registry=registry)  # noqa: S104 (scraped from other containers)
    import structlog

    structlog.get_logger(__name__).info("metrics_served", role=role, port=port)
    return port


_collectors: set[type[Collector]] = set()


def collector_register(kind: type[Collector]) -> None:
    """Register a scrape-time collector on the default registry, once per process.

    Apps call it from AppConfig.ready, which may run more than once in tests.
    """
    if kind not in _collectors:
        REGISTRY.register(kind())
        _collectors.add(kind)
