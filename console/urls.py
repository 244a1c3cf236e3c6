"""The operator console, on tenant hosts (`<slug>.<base domain>`) and, for staff, the platform view.

The RCA review, approvals and healing pages (console/healing_views.py) and
the experiments page (console/strategy_views.py) register here too, under the
same `console` namespace, so that every page shares one nav and one login.
"""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from console import healing_views, strategy_views, views

app_name = "console"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.ConsoleLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="console:login"), name="logout"),
    path("sources/<int:source_id>/", views.source_detail, name="source"),
    path("sources/<int:source_id>/samples.json", views.source_samples, name="source-samples"),
    path("sources/<int:source_id>/actions/", views.source_action, name="source-action"),
    path("audit/", views.audit, name="audit"),
    path("platform/", views.platform, name="platform"),
    # RCA review, approvals and healing history (console/healing_views.py).
    path("rca/", healing_views.rca_review, name="rca"),
    path("rca/<int:rca_id>/confirm", healing_views.rca_confirm_view, name="rca-confirm"),
    path("approvals/", healing_views.approvals, name="approvals"),
    path("approvals/<int:action_id>/decide", healing_views.approval_decide, name="approval-decide"),
    path("healing/", healing_views.healing_history, name="healing"),
    # A/B experiments between strategy versions (console/strategy_views.py).
    path("experiments/", strategy_views.experiments, name="experiments"),
    path("experiments/<int:experiment_id>/decide", strategy_views.experiment_decide, name="experiment-decide"),
]
