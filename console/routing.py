from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from django.urls import path

from console import consumers

# Session auth only here: the API's websockets authenticate by key and need no cookies.
websocket_urlpatterns = [
    path("ws/console/overview", AuthMiddlewareStack(consumers.OverviewConsumer.as_asgi())),
]
