"""Console pages: thin views over console.selectors (reads) and console.services (actions)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from console import selectors, services
from console.access import staff_console, tenant_console, tenants_of
from console.audit import AuditFilter, audit_entries
from console.platform import platform_report
from engines.selectors import source_get
from observability.capacity import platform_capacity
from tenants.staff import is_platform_staff


class ConsoleLoginView(LoginView):
    template_name = "console/login.html"
    redirect_authenticated_user = True


def _tenant_links(request: HttpRequest) -> list[dict[str, Any]]:
    port = request.get_port()
    suffix = "" if port in ("80", "443") else f":{port}"
    return [
        {"slug": t.slug, "name": t.name, "console_url": f"{request.scheme}://{_host_of(t)}{suffix}/"}
        for t in tenants_of(request.user)
    ]


def _host_of(tenant: Any) -> str:
    domain = tenant.domains.filter(is_primary=True).first() or tenant.domains.first()
    return str(domain.domain) if domain else f"{tenant.slug}.{settings.BEASTFLOW_BASE_DOMAIN}"


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """A tenant host shows its overview; elsewhere staff go to the platform view, others choose a tenant."""
    if getattr(request, "tenant", None) is not None:
        response: HttpResponse = overview(request)
        return response
    if is_platform_staff(request.user):
        return redirect("console:platform")
    context = {"tenants": _tenant_links(request), "base_domain": settings.BEASTFLOW_BASE_DOMAIN}
    context["port"] = request.get_port() if request.get_port() not in ("80", "443") else ""
    return render(request, "console/no_tenant.html", context, status=200 if request.user.is_authenticated else 404)


@tenant_console
def overview(request: HttpRequest) -> HttpResponse:
    rows = selectors.source_rows()
    return render(request, "console/overview.html", {"rows": rows, "summary": selectors.rows_summary(rows)})


@require_GET
@tenant_console
def source_detail(request: HttpRequest, source_id: int) -> HttpResponse:
    source = source_get(source_id)
    if source is None:
        return render(request, "console/not_found.html", {"what": f"source {source_id}"}, status=404)
    context = selectors.source_page(source)
    context["can_operate"] = getattr(request, "console_role", "") == "operator"
    return render(request, "console/source.html", context)


@require_GET
@tenant_console
def source_samples(request: HttpRequest, source_id: int) -> JsonResponse:
    source = source_get(source_id)
    if source is None:
        return JsonResponse({"detail": "No such source."}, status=404)
    return JsonResponse(selectors.source_series(source))


@require_POST
@tenant_console(operate=True)
def source_action(request: HttpRequest, source_id: int) -> HttpResponse:
    source = source_get(source_id)
    if source is None:
        return render(request, "console/not_found.html", {"what": f"source {source_id}"}, status=404)
    try:
        done = services.operator_act(
            source=source,
            actor=request.user.get_username(),
            action=request.POST.get("action", ""),
            reason=request.POST.get("reason", ""),
            mode=request.POST.get("mode", ""),
        )
    except services.ActionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, done)
    return redirect(reverse("console:source", args=[source.pk]) + "#actions")


@require_GET
@tenant_console
def audit(request: HttpRequest) -> HttpResponse:
    flt = AuditFilter.from_query(request.GET)
    entries = audit_entries(flt)
    context = {
        "entries": entries,
        "filter": flt,
        "kinds": AuditFilter.KINDS,
        "windows": [("1h", "Last hour"), ("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("all", "All time")],
        "sources": selectors.source_choices(),
    }
    return render(request, "console/audit.html", context)


@require_GET
@staff_console
def platform(request: HttpRequest) -> HttpResponse:
    report = platform_report()
    report["capacity"] = platform_capacity()  # latency, throughput, headroom, recommendations (observability)
    port = request.get_port()
    suffix = "" if port in ("80", "443") else f":{port}"
    for row in report["tenants"]:
        row["console_url"] = f"{request.scheme}://{row['domain']}{suffix}/"
    return render(request, "console/platform.html", report)
