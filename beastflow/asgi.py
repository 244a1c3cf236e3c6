"""One ASGI application for HTTP and websockets."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "beastflow.settings")
# The web process pools its database connections (see DATABASES in settings).
os.environ.setdefault("BEASTFLOW_DB_POOL_SIZE", "20")
# Tracing, when OTEL_* asks for it (docs/observability.md): before Django builds its middleware chain.
from beastflow import otel

otel.configure("web")
django_http = get_asgi_application()  # sets Django up before the imports below

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from console.routing import websocket_urlpatterns as console_websockets  # noqa: E402
from engines.ingest.fastpath import IngestFastPath  # noqa: E402
from engines.routing import websocket_urlpatterns  # noqa: E402
from observability.ingest_capacity import IngestCapacityRecorder  # noqa: E402
from tenants.websocket import TenantWebsocketMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {
        # The hot ingest endpoint skips Django's request cycle; all else goes to Django.
        # Around it, per-tenant ingest latency and throughput (docs/observability.md, capacity).
        "http": IngestCapacityRecorder(IngestFastPath(django_http)),
        "websocket": TenantWebsocketMiddleware(URLRouter(websocket_urlpatterns + console_websockets)),
    }
)
