"""The console's healing pages: RCA review, approvals, healing history. Server-rendered, behind login.

Thin: reads through healing.selectors, writes through healing.services and
healing.rca.analysis (the same functions as the API, with the signed-in
user as the actor). They live in the console, which reads healing, so
that healing never imports the console; their templates stay in
templates/healing/. The lists refresh themselves: static/healing/live.js
re-fetches the page's `#live` fragment (`?fragment=1`) every few seconds.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from console.access import live_page, tenant_console
from healing import selectors, services
from healing.models import HealingAction, HealingStatus
from healing.rca.analysis import RCAError, rca_confirm
from healing.schemas import RCACategory

CATEGORIES = [c.value for c in RCACategory]
PAGE = 50


@require_GET
@tenant_console
def rca_review(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "unconfirmed")
    if status not in selectors.RCA_STATUSES:
        status = "unconfirmed"
    rows = list(selectors.rca_results(status=status).select_related("failure")[:PAGE])
    items = [{"rca": rca, "timeline": selectors.rca_timeline(rca)} for rca in rows]
    context = {"items": items, "status": status, "categories": CATEGORIES, "learner": selectors.learner_report()}
    return live_page(request, "healing/rca.html", "healing/_rca_list.html", context)


@require_POST
@tenant_console(operate=True)
def rca_confirm_view(request: HttpRequest, rca_id: int) -> HttpResponse:
    rca = selectors.rca_get(rca_id)
    if rca is None:
        return render(request, "console/not_found.html", {"what": f"RCA result {rca_id}"}, status=404)
    category = request.POST.get("category") or None
    try:
        rca = rca_confirm(
            rca=rca, actor=request.user.get_username(), category=category, note=request.POST.get("note", "")
        )
    except RCAError as exc:
        messages.error(request, exc.detail)
    else:
        verb = "Confirmed" if rca.confirmed_category == rca.category else "Corrected to"
        messages.success(request, f"{verb} {rca.confirmed_category} (RCA {rca.pk}).")
    return redirect(reverse("console:rca") + f"#rca-{rca_id}")


@require_GET
@tenant_console
def approvals(request: HttpRequest) -> HttpResponse:
    waiting = list(HealingAction.objects.filter(status__in=services.WAITING).order_by("requested_at")[:PAGE])
    decided = list(
        HealingAction.objects.exclude(decided_at__isnull=True)
        .exclude(decided_by__startswith="healing")
        .order_by("-decided_at")[:20]
    )
    return live_page(
        request, "healing/approvals.html", "healing/_approvals_list.html", {"waiting": waiting, "decided": decided}
    )


@require_POST
@tenant_console(operate=True)
def approval_decide(request: HttpRequest, action_id: int) -> HttpResponse:
    action = selectors.healing_action_get(action_id)
    if action is None:
        return render(request, "console/not_found.html", {"what": f"healing action {action_id}"}, status=404)
    decision = request.POST.get("decision")
    reason = request.POST.get("reason", "").strip()
    actor = f"user:{request.user.get_username()}"
    try:
        if decision == "approve":
            action = services.healing_action_approve(action=action, actor=actor, reason=reason)
            secret = getattr(action, "secret_once", None)
            note = f" New webhook secret (shown once): {secret}" if secret else ""
            messages.success(request, f"Approved {action.strategy} (action {action.pk}): it runs now.{note}")
        elif decision == "reject":
            if not reason:
                messages.error(request, "Say why you reject it.")
                return redirect("console:approvals")
            action = services.healing_action_reject(action=action, actor=actor, reason=reason)
            messages.success(request, f"Rejected {action.strategy} (action {action.pk}): nothing runs.")
        else:
            messages.error(request, "Choose approve or reject.")
    except services.HealingActionError as exc:
        messages.error(request, exc.detail)
    return redirect("console:approvals")


@require_GET
@tenant_console
def healing_history(request: HttpRequest) -> HttpResponse:
    actions = list(HealingAction.objects.order_by("-id")[:PAGE])
    strategies = [s for s in selectors.strategy_stats() if s["successes"] or s["failures"]]
    running = sum(1 for a in actions if a.status == HealingStatus.RUNNING)
    context = {"actions": actions, "strategies": strategies, "running": running}
    return live_page(request, "healing/healing.html", "healing/_healing_list.html", context)
