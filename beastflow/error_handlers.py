"""Django's error handlers (beastflow/urls.py names them): problem+json for the API.

A 404, 400, 403 or 500 outside a DRF view (an unknown path, a middleware's
refusal or crash) is answered like the API's own errors when the client
wants JSON (an /api/ path or a JSON Accept), with Django's page otherwise.
A 500 from an unreachable store is a 503 (beastflow/unavailable.py). Kept
apart from beastflow/problems.py, which every room imports to build
problems: the handlers need the outage check, and the outage check builds
its 503 with problems.
"""

from __future__ import annotations

import sys

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.views import defaults

from beastflow.problems import problem_response
from beastflow.unavailable import response_for


def _wants_problem(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "json" in request.headers.get("Accept", "")


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_problem(request):
        return problem_response(404, "Nothing here.")
    return defaults.page_not_found(request, exception or Http404())


def handler500(request: HttpRequest) -> HttpResponse:
    # Raised by a middleware (no process_exception saw it): an unreachable store is still a 503.
    unavailable = response_for(request, sys.exc_info()[1])
    if unavailable is not None:
        return unavailable
    if _wants_problem(request):
        return problem_response(500, "An internal error; it has been logged with the request id.")
    return defaults.server_error(request)


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return problem_response(400, str(exception) if exception else "Bad request.")


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_problem(request):
        return problem_response(403, "Forbidden.")
    return defaults.permission_denied(request, exception or PermissionDenied())
