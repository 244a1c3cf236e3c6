"""OpenTelemetry tracing with the in-memory exporter: spans, correlation ids, trace ids in logs, linked traces."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django_tenants.utils import tenant_context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from beastflow import otel, tracing
from tests.conftest import Persona


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert otel.configure("test", exporter=exporter, set_global=False)
    try:
        yield exporter
    finally:
        otel.shutdown()


def _by_name(found: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in found if span.name == name]


def _wait_for(exporter: InMemorySpanExporter, name: str, timeout_s: float = 10.0) -> ReadableSpan:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = _by_name(exporter.get_finished_spans(), name)
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"no span {name!r}: {[s.name for s in exporter.get_finished_spans()]}")


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_tracing_is_off_unless_the_otel_variables_ask_for_it(environ: dict[str, str], on: bool) -> None:
    assert otel.wanted(environ) is on


def test_off_by_default_stages_only_time(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert otel.configure("test") is False
    assert tracing.tracer is None
    assert tracing.add_trace_ids(None, "info", {"event": "x"}) == {"event": "x"}


def test_an_api_request_is_a_trace_with_the_correlation_id_and_its_log_lines_carry_the_trace_id(
    spans: InMemorySpanExporter, alice: Persona, caplog: pytest.LogCaptureFixture
) -> None:
    # given: a log line written inside the request's work
    import structlog

    # when
    with caplog.at_level(logging.INFO):
        response = alice.client().get("/api/v1/sources", HTTP_X_REQUEST_ID="corr-trace-1")
        with otel.span("outside-a-request"):
            structlog.get_logger("test").info("inside_a_span")
    # then: Django's server span carries the correlation id
    assert response.status_code == 200
    server = [s for s in spans.get_finished_spans() if s.attributes and s.attributes.get("http.route")]
    assert server, [s.name for s in spans.get_finished_spans()]
    assert server[-1].attributes is not None
    assert server[-1].attributes.get(otel.CORRELATION_ATTRIBUTE) == "corr-trace-1"
    # and: a log line inside a span has its trace and span ids
    outside = _by_name(spans.get_finished_spans(), "outside-a-request")[0]
    lines = [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == "inside_a_span"]
    assert lines and lines[0]["trace_id"] == format(outside.context.trace_id, "032x")
    assert lines[0]["span_id"] == format(outside.context.span_id, "016x")


def test_a_push_on_the_fast_path_traces_its_stages_and_the_callback_task_it_queues(
    spans: InMemorySpanExporter,
    committed_source: tuple[int, str],
    personas: dict[str, Persona],
    django_db_blocker: Any,
) -> None:
    from beastflow.asgi import application
    from beastflow.redis_client import get_redis
    from callbacks.models import Subscription
    from callbacks.services import subscription_create
    from callbacks.wake import wake_key

    # given: a subscription (so a commit queues a delivery task) and a caller's trace
    source_id, secret = committed_source
    tenant = personas["alice"].tenant
    with django_db_blocker.unblock(), tenant_context(tenant):
        subscription, _ = subscription_create(url="http://127.0.0.1:9/hook", sources=[source_id], from_seq=None)
    # An earlier test's commit in this tenant may have left its delivery wake debounced
    # (callbacks.wake): then this push would queue no task. This push must be the one that wakes.
    get_redis().delete(wake_key(tenant.schema_name))
    body = json.dumps({"id": "traced-1", "type": "upsert", "key": "k", "version": 1, "data": {}}).encode()
    headers = {
        "X-BeastFlow-Signature": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
        "Content-Type": "application/json",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "X-Request-ID": "push-corr-1",
    }

    async def push() -> httpx.Response:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.post(f"/api/v1/sources/{source_id}/events", content=body, headers=headers)

    try:
        # when
        with django_db_blocker.unblock():
            response = asyncio.run(push())
            publish = _wait_for(spans, "apply_async/callbacks.tasks.callbacks_deliver_task")
    finally:
        with django_db_blocker.unblock(), tenant_context(tenant):
            Subscription.objects.filter(pk=subscription.pk).delete()
    # then: one trace, continuing the caller's, with the server span and its stages
    assert response.status_code == 202, response.text
    finished = spans.get_finished_spans()
    server = _by_name(finished, "POST /api/v1/sources/{id}/events")[-1]
    caller_trace = 0x0AF7651916CD43DD8448EB211C80319C
    assert server.context.trace_id == caller_trace
    assert server.parent is not None and server.parent.span_id == 0xB7AD6B7169203331
    assert server.attributes is not None and server.attributes[otel.CORRELATION_ATTRIBUTE] == "push-corr-1"
    for stage in ("ingest.auth", "ingest.validate", "ingest.commit", "ingest.publish"):
        found = [s for s in _by_name(finished, stage) if s.context.trace_id == caller_trace]
        assert found, stage
    # and: the delivery task queued by the commit's wake continues the push's trace
    assert publish.context.trace_id == caller_trace


def test_a_switch_leaves_a_link_for_the_poll_it_makes_due(
    spans: InMemorySpanExporter, in_acme: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from console.services import source_force_mode
    from engines.tasks import source_poll_task
    from tests.factories import make_source

    # given: a switch made inside a monitor tick's span
    source, _ = make_source("traced-switch")  # its upstream does not answer: the poll fails fast, traced all the same
    with otel.span("monitor.tick"), django_capture_on_commit_callbacks(execute=True):
        source_force_mode(source=source, actor="alice", to="polling", reason="traced")
    switch = _by_name(spans.get_finished_spans(), "mode.switch")[-1]
    tick = _by_name(spans.get_finished_spans(), "monitor.tick")[-1]
    # when: the poll runs later, in its own trace
    source_poll_task(source.pk, "manual")
    # then
    poll = _by_name(spans.get_finished_spans(), "poll")[-1]
    assert switch.parent is not None and switch.parent.span_id == tick.context.span_id
    assert [link.context.span_id for link in poll.links] == [switch.context.span_id]
    assert poll.context.trace_id != switch.context.trace_id  # linked, not nested
