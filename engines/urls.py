from __future__ import annotations

from django.urls import path

from engines import apis

urlpatterns = [
    path("sources", apis.SourceListCreateApi.as_view(), name="sources"),
    path("sources/<str:source_id>", apis.SourceDetailApi.as_view(), name="source-detail"),
]
