"""Structured logs: one JSON object a line, with the correlation id on each."""

from __future__ import annotations

import logging
import logging.config
import sys

import structlog

from beastflow.tracing import add_trace_ids

_SHARED_PROCESSORS: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    add_trace_ids,  # trace_id / span_id when tracing is on (docs/observability.md)
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.StackInfoRenderer(),
]


def configure_logging(*, level: str = "INFO", fmt: str = "json") -> None:
    """Route stdlib and structlog records through one renderer.

    Libraries log through stdlib `logging`; our code logs through structlog.
    Both end in the same formatter, so every line carries the same context
    (correlation id, tenant, task) whoever wrote it.
    """
    renderer: structlog.types.Processor
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    else:
        renderer = structlog.processors.JSONRenderer()

    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "structured": {
                    "()": structlog.stdlib.ProcessorFormatter,
                    "foreign_pre_chain": _SHARED_PROCESSORS,
                    "processors": [
                        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.format_exc_info,
                        renderer,
                    ],
                }
            },
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "formatter": "structured",
                    "stream": "ext://sys.stderr",
                }
            },
            "root": {"handlers": ["stderr"], "level": level},
            "loggers": {
                # Access lines come from our own middleware, with the request id.
                "uvicorn.access": {"level": "WARNING"},
                "django.server": {"level": "WARNING"},
                "celery.redirected": {"level": "WARNING"},
                # One line per upstream request is noise; polls log their own outcome.
                "httpx": {"level": "WARNING"},
                "httpcore": {"level": "WARNING"},
            },
        }
    )
    structlog.configure(
        processors=[
            *_SHARED_PROCESSORS,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
