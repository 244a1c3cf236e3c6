"""Operational endpoints: liveness and readiness (docs/contract.md §7)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from beastflow import health
from beastflow.problems import CONTENT_TYPE, problem_body


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Every component, or `?only=a,b` (a probe about one process: docs/deploy.md)."""
    only = None
    if request.GET.get("only"):
        only = {name.strip() for name in request.GET["only"].split(",") if name.strip()}
        unknown = sorted(only - set(health.registered()))
        if unknown:
            body = problem_body(400, f"unknown components: {', '.join(unknown)}")
            body["errors"] = [{"field": "only", "message": f"unknown component {name!r}"} for name in unknown]
            return JsonResponse(body, status=400, content_type=CONTENT_TYPE)
    ready, report = health.readiness(only)
    if ready:
        # Non-critical parts failing (Redis, workers behind): still serving, 200, and said.
        degraded = sorted(name for name, entry in report.items() if not entry["ok"])
        if degraded:
            return JsonResponse({"status": "degraded", "degraded": degraded, "components": report})
        return JsonResponse({"status": "ready", "components": report})
    failing = sorted(name for name, entry in report.items() if not entry["ok"] and entry["critical"])
    body = problem_body(503, f"not ready: {', '.join(failing)}", title="Service Unavailable", kind="not-ready")
    body["failing"] = failing
    body["components"] = report
    return JsonResponse(body, status=503, content_type=CONTENT_TYPE)
