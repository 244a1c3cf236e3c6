from __future__ import annotations

from django.contrib import admin
from django.contrib.staticfiles.views import serve as static_serve
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from beastflow import openapi, views  # noqa: F401  (openapi registers the API key's schema extension)
from beastflow.metrics import metrics_view
from console.asyncapi import asyncapi_view

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    # Every process's metrics (web, workers, beat) and the scrape-time gauges: beastflow/metrics.py.
    path("metrics", metrics_view, name="prometheus-django-metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    # The websockets (AsyncAPI 3.0), beside the OpenAPI document: docs/api.md.
    path("api/asyncapi.json", asyncapi_view, name="asyncapi"),
    path("api/v1/", include("engines.urls")),
    path("api/v1/", include("callbacks.urls")),
    path("api/v1/", include("healing.urls")),
    path("api/v1/", include("console.api_urls")),  # diagnostics and the audit timeline
    path("api/v1/", include("observability.urls")),  # capacity, failure recordings
    path("api/v1/", include("strategies.urls")),  # strategy versions and experiments
    path("admin/", admin.site.urls),
    # Static files are served by the app itself (no CDN, no extra server): the
    # console's few small files, cached by the browser.
    re_path(r"^static/(?P<path>.*)$", static_serve, {"insecure": True}),
    path("", include("console.urls")),
]

handler400 = "beastflow.error_handlers.handler400"
handler403 = "beastflow.error_handlers.handler403"
handler404 = "beastflow.error_handlers.handler404"
handler500 = "beastflow.error_handlers.handler500"
