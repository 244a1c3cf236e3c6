"""Typed exceptions: every error answer of the API is application/problem+json.

`ApiError` carries the problem's fields (`type`, `title`, `status`, `detail`,
`errors`) and the whole body (`problem`, e.g. the `floor` of a 410); a
subclass per status lets callers catch what they can act on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any


class BeastFlowError(Exception):
    """Base of every exception this SDK raises."""

    # Set when a multi-request push failed part way: what the requests before
    # the failing one committed ({"accepted", "duplicates"}); they stay committed.
    committed: dict[str, int] | None = None


class TransportError(BeastFlowError):
    """The server could not be reached, or the connection broke (after the retries allowed)."""


class WebhookVerificationError(BeastFlowError):
    """A callback whose signature is missing, malformed, wrong or outside the tolerance window."""


class ApiError(BeastFlowError):
    """An HTTP error answer (4xx/5xx) with its problem+json fields."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        type: str = "about:blank",
        title: str = "",
        errors: list[dict[str, Any]] | None = None,
        problem: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {title or 'error'}: {detail}")
        self.status = status
        self.detail = detail
        self.type = type
        self.title = title
        self.errors: list[dict[str, Any]] = list(errors or [])
        self.problem: dict[str, Any] = dict(problem or {})
        self.headers: dict[str, str] = dict(headers or {})
        self.retry_after = retry_after


class BadRequestError(ApiError):
    """400: a malformed request or parameter."""


class AuthenticationError(ApiError):
    """401: no API key, an invalid or revoked one (or a bad upstream signature on ingest)."""


class PermissionDeniedError(ApiError):
    """403."""


class NotFoundError(ApiError):
    """404: absent, deleted, or another tenant's (never told apart)."""


class ConflictError(ApiError):
    """409: e.g. deciding a healing action that is no longer awaiting approval."""


class GoneError(ApiError):
    """410: changes below the retention floor are no longer kept; resume from `floor`."""

    @property
    def floor(self) -> int | None:
        value = self.problem.get("floor")
        return int(value) if isinstance(value, int) else None


class PayloadTooLargeError(ApiError):
    """413: the body is over the server's limit."""


class UnprocessableError(ApiError):
    """422: invalid input; `errors` names each field (`field`) or batch position (`index`). Nothing was stored."""


class RateLimitedError(ApiError):
    """429: over the tenant's ingest quota; `retry_after` says when to try again."""


class ServerError(ApiError):
    """5xx."""


class ServiceUnavailableError(ServerError):
    """503: a dependency is down; `retry_after` when the server said."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    410: GoneError,
    413: PayloadTooLargeError,
    422: UnprocessableError,
    429: RateLimitedError,
    503: ServiceUnavailableError,
}


def _error_class(status: int) -> type[ApiError]:
    return _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def error_from_response(status: int, headers: Mapping[str, str], body: bytes) -> ApiError:
    """The typed exception for an error answer, with its problem+json fields when the body has them."""
    problem: dict[str, Any] = {}
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        problem = parsed
    detail = problem.get("detail")
    if not isinstance(detail, str):
        detail = body[:200].decode("utf-8", "replace") if body and not problem else ""
    errors = problem.get("errors")
    cls = _error_class(status)
    lowered = {name.lower(): value for name, value in headers.items()}
    return cls(
        status,
        detail,
        type=str(problem.get("type") or "about:blank"),
        title=str(problem.get("title") or ""),
        errors=errors if isinstance(errors, list) else [],
        problem=problem,
        headers=lowered,
        retry_after=parse_retry_after(lowered.get("retry-after")),
    )


def websocket_error(code: int, reason: str) -> ApiError:
    """The exception for an application close code of the changes websocket (4000 + HTTP status)."""
    status = code - 4000 if 4000 <= code < 5000 else 500
    problem: dict[str, Any] = {"status": status, "detail": reason}
    if status == 410 and ">=" in reason:  # "gone: resume with after >= <floor>"
        tail = reason.rsplit(">=", 1)[1].strip()
        if tail.isdigit():
            problem["floor"] = int(tail)
    cls = _error_class(status)
    return cls(status, reason or f"websocket closed with code {code}", problem=problem)
