"""The operator console, on tenant hosts (`<slug>.<base domain>`) and, for staff, the platform view.

The RCA review, approvals and healing pages (issue 6) register here under
the same `console` namespace; until they land, `rca`, `approvals` and
`healing` are placeholders owned by the console.
"""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from console import views

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
    # Placeholders until the RCA/approval views (healing/console_views.py) replace them.
    path("rca/", views.placeholder, {"page": "rca"}, name="rca"),
    path("approvals/", views.placeholder, {"page": "approvals"}, name="approvals"),
    path("healing/", views.placeholder, {"page": "healing"}, name="healing"),
]
