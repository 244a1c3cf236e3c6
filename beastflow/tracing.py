"""Timed stages: a histogram observation and, when tracing is on, a span.

`with stage("ingest.auth", STAGE_AUTH):` costs two perf_counter calls and one
observation when tracing is off (the default); with tracing on it also opens
a child span of whatever span is current. Tracing itself is configured by
beastflow.otel (docs/observability.md); this module only asks it for the
tracer, so it stays importable without OpenTelemetry installed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from types import TracebackType
from typing import Any, Protocol


class _Observer(Protocol):
    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None: ...


# Set by beastflow.otel.configure() when tracing is enabled; None keeps stages to their histogram.
tracer: Any = None
# The current span's (trace id, span id) in hex, or None outside a span; set with `tracer`.
span_ids: Callable[[], tuple[str, str] | None] | None = None
# Puts a correlation id on the current span; set with `tracer` (beastflow.correlation.bind calls it).
tag_span: Callable[[str], None] | None = None
# Whether the current span is recorded (sampled); set with `tracer`. A stage
# inside a trace the sampler dropped opens no span: most of tracing's cost
# per push is in making spans, recorded or not.
recording: Callable[[], bool] = lambda: False  # noqa: E731


def add_trace_ids(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: `trace_id` and `span_id` on every line written inside a span (tracing on)."""
    if span_ids is not None:
        ids = span_ids()
        if ids is not None:
            event_dict["trace_id"], event_dict["span_id"] = ids
    return event_dict


class stage:  # noqa: N801 (used like a function: `with stage(...)`)
    """Time a block into `histogram` (a labelled child, bound once) and trace it as `name`."""

    __slots__ = ("_histogram", "_name", "_span", "_started")

    def __init__(self, name: str, histogram: _Observer | None = None) -> None:
        self._name = name
        self._histogram = histogram
        self._span: Any = None
        self._started = 0.0

    def __enter__(self) -> stage:
        if tracer is not None and recording():
            self._span = tracer.start_as_current_span(self._name)
            self._span.__enter__()
        self._started = time.perf_counter()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._histogram is not None:
            self._histogram.observe(time.perf_counter() - self._started)
        if self._span is not None:
            self._span.__exit__(kind, error, trace)
