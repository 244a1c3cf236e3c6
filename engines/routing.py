from __future__ import annotations

from django.urls import path

from engines import consumers

websocket_urlpatterns = [
    path("ws/v1/ping", consumers.PingConsumer.as_asgi()),
    path("ws/v1/changes", consumers.ChangesConsumer.as_asgi()),
]
