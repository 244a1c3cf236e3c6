from __future__ import annotations

from django.urls import path

from engines import apis, openapi  # noqa: F401  (openapi registers the sources' schema extensions)
from engines.connectors.presets import apis as preset_apis
from engines.ingest import apis as ingest_apis
from engines.ingest import views as ingest_views

urlpatterns = [
    path("sources", apis.SourceListCreateApi.as_view(), name="sources"),
    path("sources/<str:source_id>", apis.SourceDetailApi.as_view(), name="source-detail"),
    path("sources/<int:source_id>/events", ingest_views.ingest_events, name="source-events"),
    path(
        "sources/<str:source_id>/mapping/preview",
        ingest_apis.MappingPreviewApi.as_view(),
        name="source-mapping-preview",
    ),
    path("sources/<str:source_id>/records", apis.RecordListApi.as_view(), name="source-records"),
    path("sources/<str:source_id>/records/<path:key>", apis.RecordDetailApi.as_view(), name="source-record"),
    path("sources/<str:source_id>/health", apis.SourceHealthApi.as_view(), name="source-health"),
    path("sources/<str:source_id>/mode-switches", apis.ModeSwitchListApi.as_view(), name="source-mode-switches"),
    path("sources/<str:source_id>/polls", apis.PollRunListApi.as_view(), name="source-polls"),
    path("sources/<str:source_id>/poll", apis.SourcePollApi.as_view(), name="source-poll"),
    path("sources/<str:source_id>/reconcile", apis.SourceReconcileApi.as_view(), name="source-reconcile"),
    path(
        "sources/<str:source_id>/reconciliations", apis.ReconciliationListApi.as_view(), name="source-reconciliations"
    ),
    path("changes", apis.ChangeFeedApi.as_view(), name="changes"),
    path("presets", preset_apis.PresetListApi.as_view(), name="presets"),
    path("presets/<str:name>", preset_apis.PresetDetailApi.as_view(), name="preset-detail"),
]
