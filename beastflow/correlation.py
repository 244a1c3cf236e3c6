"""Correlation ids: one per request, carried into the Celery tasks it causes.

The id lives in structlog's context variables, so every log line of the
work (request, task, or task caused by a task) carries it.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from beastflow import tracing

HEADER = "X-Request-ID"
TASK_HEADER = "beastflow_correlation_id"  # Celery has its own "correlation_id"
# Accept what a client sends only when it is plainly an id: it lands in logs.
_VALID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

log = structlog.get_logger("beastflow.request")


def new_id() -> str:
    return uuid.uuid4().hex


def accept_or_new(candidate: str | None) -> str:
    if candidate and _VALID.match(candidate):
        return candidate
    return new_id()


def current() -> str | None:
    value = structlog.contextvars.get_contextvars().get("correlation_id")
    return str(value) if value else None


def bind(correlation_id: str, **extra: Any) -> None:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(correlation_id=correlation_id, **extra)
    if tracing.tag_span is not None:
        # The request's span started before the id was known (tracing on only).
        tracing.tag_span(correlation_id)


class CorrelationIdMiddleware:
    """Binds the request's id to the log context and echoes it back."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        started = self._start(request)
        response = self.get_response(request)
        return self._finish(request, response, started)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        started = self._start(request)
        handler: Callable[[HttpRequest], Awaitable[HttpResponse]] = self.get_response
        response = await handler(request)
        return self._finish(request, response, started)

    def _start(self, request: HttpRequest) -> float:
        correlation_id = accept_or_new(request.headers.get(HEADER))
        request.correlation_id = correlation_id  # type: ignore[attr-defined]
        bind(correlation_id)
        return time.perf_counter()

    def _finish(self, request: HttpRequest, response: HttpResponse, started: float) -> HttpResponse:
        response[HEADER] = request.correlation_id  # type: ignore[attr-defined]
        if not request.path.startswith(("/metrics", "/healthz")):
            log.info(
                "request",
                method=request.method,
                path=request.path,
                status=response.status_code,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                tenant=getattr(getattr(request, "tenant", None), "schema_name", None),
            )
        return response
