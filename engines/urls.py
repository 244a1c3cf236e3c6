from __future__ import annotations

from django.urls import path

from engines import apis
from engines.ingest import views as ingest_views

urlpatterns = [
    path("sources", apis.SourceListCreateApi.as_view(), name="sources"),
    path("sources/<str:source_id>", apis.SourceDetailApi.as_view(), name="source-detail"),
    path("sources/<int:source_id>/events", ingest_views.ingest_events, name="source-events"),
    path("sources/<str:source_id>/records", apis.RecordListApi.as_view(), name="source-records"),
    path("sources/<str:source_id>/records/<path:key>", apis.RecordDetailApi.as_view(), name="source-record"),
    path("changes", apis.ChangeFeedApi.as_view(), name="changes"),
]
