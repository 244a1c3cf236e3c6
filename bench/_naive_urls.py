"""The naive baseline: a DRF create view saving one event per request with the ORM.

What a first version of the ingest endpoint would look like: API key auth
(the product's middleware and DRF authentication), a ModelSerializer on the
same engines.Event table in the tenant's schema, `serializer.save()`. It
stores only the event (no record, no change, no seq, no stream state), so it
does less work per event than the real path. The product's URLs follow, so
this server is BeastFlow plus one route.
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from django.urls import path
from django.utils import timezone
from rest_framework import generics, serializers

from beastflow.urls import handler400, handler403, handler404, handler500  # noqa: F401
from beastflow.urls import urlpatterns as product_urlpatterns
from engines.models import Event, Origin, Source

NAIVE_PATH = "naive/sources/<int:source_id>/events"


class NaiveEventSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    id = serializers.CharField(source="event_id", max_length=255)
    seq = serializers.IntegerField(source="upstream_seq", required=False, allow_null=True, min_value=0)

    class Meta:
        model = Event
        fields = ["id", "type", "key", "version", "seq", "data", "occurred_at"]


class NaiveEventCreateApi(generics.CreateAPIView):  # type: ignore[type-arg]
    serializer_class = NaiveEventSerializer

    def perform_create(self, serializer: Any) -> None:
        source = get_object_or_404(Source, pk=self.kwargs["source_id"])
        serializer.save(source=source, origin=Origin.PUSH, received_at=timezone.now())


urlpatterns = [
    path(NAIVE_PATH, NaiveEventCreateApi.as_view(), name="naive-events"),
    *product_urlpatterns,
]
