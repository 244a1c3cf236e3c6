"""Every error is application/problem+json (RFC 9457, docs/contract.md §2).

Shape: {"type", "title", "status", "detail", "errors": [{"field"|"index", "message"}]}.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

import structlog
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response

CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://beastflow.dev/problems/"

log = structlog.get_logger(__name__)

FieldError = dict[str, Any]


def problem_body(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    errors: list[FieldError] | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    phrase = HTTPStatus(status).phrase
    return {
        "type": TYPE_BASE + (kind or phrase.lower().replace(" ", "-").replace("'", "")),
        "title": title or phrase,
        "status": status,
        "detail": detail,
        "errors": errors or [],
    }


def problem_response(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    errors: list[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JsonResponse:
    response = JsonResponse(
        problem_body(status, detail, title=title, errors=errors), status=status, content_type=CONTENT_TYPE
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def flatten_errors(detail: Any, path: str = "") -> list[FieldError]:
    """DRF's nested error detail as a flat list of {"field", "message"}."""
    if isinstance(detail, Mapping):
        out: list[FieldError] = []
        for key, value in detail.items():
            name = path if key == "non_field_errors" else (f"{path}.{key}" if path else str(key))
            out.extend(flatten_errors(value, name))
        return out
    if isinstance(detail, (list, tuple)):
        out = []
        for position, value in enumerate(detail):
            if isinstance(value, (Mapping, list, tuple)):
                out.extend(flatten_errors(value, f"{path}[{position}]" if path else str(position)))
            else:
                out.extend(flatten_errors(value, path))
        return out
    return [{"field": path or "body", "message": str(detail)}]


def drf_exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: Django's 500 handler answers (and logs it)
    status = exc.status_code
    errors: list[FieldError] = []
    if isinstance(exc, exceptions.ValidationError):
        errors = flatten_errors(exc.detail)
        detail = "The request is invalid; see errors."
    elif isinstance(exc.detail, (Mapping, list)):
        errors = flatten_errors(exc.detail)
        detail = "; ".join(e["message"] for e in errors)
    else:
        detail = str(exc.detail)
    body = getattr(exc, "problem", None) or problem_body(status, detail, errors=errors)
    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    wait = getattr(exc, "wait", None)
    if wait is not None:
        headers["Retry-After"] = str(max(1, int(wait + 0.999)))
    return Response(body, status=status, headers=headers, content_type=CONTENT_TYPE)


class ProblemError(exceptions.APIException):
    """Raise from services or views to answer with a specific problem."""

    def __init__(
        self, status: int, detail: str, *, errors: Iterable[FieldError] = (), title: str | None = None
    ) -> None:
        self.status_code = status
        self.problem = problem_body(status, detail, errors=list(errors), title=title)
        super().__init__(detail)
