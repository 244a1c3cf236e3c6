"""OpenTelemetry tracing: off by default, on with the standard OTEL_* variables (docs/observability.md).

On when OTEL_SDK_DISABLED is not true and either OTEL_TRACES_EXPORTER names
an exporter (`otlp`, `console`) or an OTLP endpoint is set
(OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). Everything
else is the SDK's own reading of the environment: OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG), OTEL_EXPORTER_OTLP_HEADERS...

Each process configures itself once: the web at import of beastflow.asgi,
each Celery pool process at `worker_process_init` (a span exporter's thread
does not survive a fork), beat at `beat_init`. Instrumented with the official
packages: Django, Celery (the trace context travels in task headers),
psycopg, Redis and httpx. On top of them:

- every span carries the request's or task's correlation id
  (`beastflow.correlation_id`) and tenant schema (`beastflow.schema`);
- every log line carries `trace_id` and `span_id` (beastflow.logging);
- the ingest fast path has its own server span and stage spans
  (beastflow.tracing.stage);
- work handed over through a table or a debounced wake rather than a task
  message (a switch making a poll due, a commit waking the callbacks) is
  linked with `remember` / `links_to`, or carried by `current_context` /
  `attached`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import structlog

from beastflow import tracing

log = structlog.get_logger(__name__)

CORRELATION_ATTRIBUTE = "beastflow.correlation_id"
SCHEMA_ATTRIBUTE = "beastflow.schema"
# How long a remembered context may be linked to (s): a poll made due by a switch runs within seconds.
REMEMBER_TTL_S = 300

_state: dict[str, Any] = {"provider": None, "instrumentors": []}


def wanted(environ: dict[str, str] | os._Environ[str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = [name.strip() for name in env.get("OTEL_TRACES_EXPORTER", "").split(",") if name.strip()]
    if exporters:
        return any(name != "none" for name in exporters)
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure(role: str, *, exporter: Any = None, set_global: bool = True) -> bool:
    """Set tracing up in this process when the environment asks for it (or `exporter` is given); True if on.

    `exporter` (tests: an InMemorySpanExporter) is used as is, synchronously;
    `set_global=False` leaves OpenTelemetry's global provider alone (it can
    be set once per process) and instruments with this provider only.
    """
    if _state["provider"] is not None:
        return True
    if exporter is None and not wanted():
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME", "beastflow"), "beastflow.process": role}
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(_context_attributes())
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        for made in _exporters_from_env():
            provider.add_span_processor(BatchSpanProcessor(made))
    if set_global:
        trace.set_tracer_provider(provider)
    _state["provider"] = provider
    _instrument(provider)
    tracing.tracer = provider.get_tracer("beastflow")
    tracing.span_ids = _span_ids
    tracing.tag_span = _tag_span
    tracing.recording = _recording
    log.info(
        "tracing_on",
        role=role,
        exporter=type(exporter).__name__ if exporter else os.environ.get("OTEL_TRACES_EXPORTER", "otlp"),
    )
    return True


def shutdown() -> None:
    """Undo `configure` (tests): uninstrument, flush, forget the tracer."""
    for instrumentor in reversed(_state["instrumentors"]):
        with contextlib.suppress(Exception):
            instrumentor.uninstrument()
    _state["instrumentors"] = []
    provider = _state["provider"]
    if provider is not None:
        provider.shutdown()
    _state["provider"] = None
    tracing.tracer = None
    tracing.span_ids = None
    tracing.tag_span = None
    tracing.recording = lambda: False


def _exporters_from_env() -> list[Any]:
    names = [name.strip() for name in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if name.strip()]
    made: list[Any] = []
    for name in names:
        if name == "otlp":
            protocol = os.environ.get(
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            )
            if protocol != "http/protobuf":
                log.warning("tracing_protocol_unsupported", protocol=protocol, using="http/protobuf")
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            made.append(OTLPSpanExporter())  # endpoint, headers, timeout: from OTEL_EXPORTER_OTLP_*
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            made.append(ConsoleSpanExporter())
        elif name != "none":
            log.warning("tracing_exporter_unknown", exporter=name)
    return made


def _instrument(provider: Any) -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    instrumentors: list[Any] = [
        # Before Django loads its middleware: the instrumentor adds its own to settings.MIDDLEWARE.
        DjangoInstrumentor(),
        CeleryInstrumentor(),  # type: ignore[no-untyped-call]
        PsycopgInstrumentor(),
        RedisInstrumentor(),
        HTTPXClientInstrumentor(),
    ]
    for instrumentor in instrumentors:
        if not instrumentor.is_instrumented_by_opentelemetry:
            # skip_dep_check: psycopg-binary satisfies psycopg's instrumentation, whose check looks for psycopg.
            instrumentor.instrument(tracer_provider=provider, skip_dep_check=True)
            _state["instrumentors"].append(instrumentor)


def _context_attributes() -> Any:
    """A span processor that stamps each span with the correlation id and schema of the work it belongs to."""
    from opentelemetry.sdk.trace import SpanProcessor

    class ContextAttributes(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            bound = structlog.contextvars.get_contextvars()
            correlation_id = bound.get("correlation_id")
            if correlation_id and CORRELATION_ATTRIBUTE not in (span.attributes or {}):
                span.set_attribute(CORRELATION_ATTRIBUTE, str(correlation_id))
            schema = bound.get("schema")
            if schema:
                span.set_attribute(SCHEMA_ATTRIBUTE, str(schema))

    return ContextAttributes()


def _recording() -> bool:
    from opentelemetry import trace

    return bool(trace.get_current_span().is_recording())


def _tag_span(correlation_id: str) -> None:
    from opentelemetry import trace

    trace.get_current_span().set_attribute(CORRELATION_ATTRIBUTE, correlation_id)


def _span_ids() -> tuple[str, str] | None:
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


# Handing a trace over without a task message ------------------------------


def current_context() -> Any:
    """The active trace context to carry to another thread, or None when tracing is off."""
    if tracing.tracer is None:
        return None
    from opentelemetry import context

    return context.get_current()


@contextlib.contextmanager
def attached(carried: Any) -> Iterator[None]:
    """Run the block in a context from `current_context` (None: as is)."""
    if carried is None:
        yield
        return
    from opentelemetry import context

    token = context.attach(carried)
    try:
        yield
    finally:
        context.detach(token)


def remember(name: str) -> None:
    """Keep the current span's context under `name` in Redis for a while, for `links_to` (tracing on only)."""
    if tracing.tracer is None:
        return
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if "traceparent" not in carrier:
        return
    from beastflow.redis_client import get_redis, key

    with contextlib.suppress(Exception):  # a hint for tracing; never fails the work
        get_redis().set(key("trace", name), carrier["traceparent"], ex=REMEMBER_TTL_S)


def links_to(name: str) -> list[Any]:
    """Span links to the context remembered under `name` (empty when none, or tracing off)."""
    if tracing.tracer is None:
        return []
    from opentelemetry import propagate, trace

    from beastflow.redis_client import get_redis, key

    try:
        raw = get_redis().get(key("trace", name))
    except Exception:
        return []
    if not raw:
        return []
    parent = propagate.extract({"traceparent": raw.decode() if isinstance(raw, bytes) else str(raw)})
    span_context = trace.get_current_span(parent).get_span_context()
    return [trace.Link(span_context)] if span_context.is_valid else []


@contextlib.contextmanager
def span(name: str, *, links: list[Any] | None = None, attributes: dict[str, Any] | None = None) -> Iterator[Any]:
    """A span of our own when tracing is on (nothing otherwise)."""
    if tracing.tracer is None:
        yield None
        return
    with tracing.tracer.start_as_current_span(name, links=links or None, attributes=attributes or None) as made:
        yield made


def server_span(
    name: str, headers: dict[str, str], attributes: dict[str, Any]
) -> contextlib.AbstractContextManager[Any]:
    """A SERVER span continuing the caller's trace (W3C traceparent in `headers`), for code outside Django."""
    if tracing.tracer is None:
        return contextlib.nullcontext()
    from opentelemetry import propagate, trace

    made: contextlib.AbstractContextManager[Any] = tracing.tracer.start_as_current_span(
        name, context=propagate.extract(headers), kind=trace.SpanKind.SERVER, attributes=attributes
    )
    return made
