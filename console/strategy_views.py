"""The console's strategies page: experiments (arms, strata, result, decisions) and the versions behind them.

Thin, like console/healing_views.py: reads through strategies.selectors,
writes through strategies.services with the signed-in user as the actor.
The page refreshes its `#live` fragment every few seconds (static/healing/live.js).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from console.access import live_page, tenant_console
from strategies import selectors, services
from strategies.models import ExperimentStatus, TenantStrategy

PAGE = 20


@require_GET
@tenant_console
def experiments(request: HttpRequest) -> HttpResponse:
    rows = [selectors.experiment_render(e) for e in selectors.experiments()[:PAGE]]
    tenant = TenantStrategy.objects.select_related("default_version__config").filter(pk=1).first()
    context: dict[str, Any] = {
        "experiments": rows,
        "versions": selectors.versions_render(list(selectors.versions()[:PAGE])),
        "default": tenant.default_version if tenant else None,
        "auto_promote": bool(tenant and tenant.auto_promote),
        "waiting": ExperimentStatus.AWAITING_APPROVAL.value,
        "running": ExperimentStatus.RUNNING.value,
    }
    return live_page(request, "strategies/experiments.html", "strategies/_experiments_list.html", context)


@require_POST
@tenant_console(operate=True)
def experiment_decide(request: HttpRequest, experiment_id: int) -> HttpResponse:
    experiment = selectors.experiment_get(experiment_id)
    if experiment is None:
        return render(request, "console/not_found.html", {"what": f"experiment {experiment_id}"}, status=404)
    decision = request.POST.get("decision")
    reason = request.POST.get("reason", "").strip() or f"{decision} in the console"
    actor = f"user:{request.user.get_username()}"
    try:
        if decision == "promote":
            services.experiment_promote(experiment=experiment, actor=actor)
            messages.success(request, f"Promoted {experiment.treatment}: it is the tenant default now.")
        elif decision == "reject":
            services.experiment_reject(experiment=experiment, actor=actor, reason=reason)
            messages.success(request, f"Rejected: the sources of {experiment.name} run what they ran before.")
        elif decision == "stop":
            services.experiment_stop(experiment=experiment, actor=actor, reason=reason)
            messages.success(request, f"Stopped {experiment.name}: the sources run what they ran before.")
        else:
            messages.error(request, "Choose promote, reject or stop.")
    except services.StrategyError as exc:
        messages.error(request, exc.detail)
    return redirect(reverse("console:experiments") + f"#experiment-{experiment_id}")
