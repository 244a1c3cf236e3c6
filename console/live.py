"""Live overview: a compact status row per source, pushed to the tenant's console group.

Published after each monitor tick (one message per tenant with every source
it judged) and after each mode switch or operator action (one source), on
the channel layer group `console.<schema>`, which every open overview of the
tenant joins (console.consumers). Losing a message costs nothing lasting:
the next tick sends fresh rows, and a reconnecting page gets a snapshot.

Never raises: the monitor and the actions must not fail because a browser
is not listening or Redis hiccups.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from prometheus_client import Counter

from beastflow.redis_client import get_redis

log = structlog.get_logger(__name__)

PUBLISHED = Counter("beastflow_console_updates_total", "Console status messages sent, by outcome", ["outcome"])
SEND_TIMEOUT_S = 1.0


def group_for(schema: str) -> str:
    # Channel layer group names allow letters, digits, '-', '_' and '.'; schema names are t_<slug>.
    return f"console.{schema}"


def sources_changed(
    schema: str, source_ids: Iterable[int] | None = None, *, rates: Mapping[int, float | None] | None = None
) -> None:
    """Send the status rows of these sources (all when None) of `schema` to its open consoles."""
    try:
        from django_tenants.utils import schema_context

        from console.selectors import source_rows

        with schema_context(schema):
            rows = source_rows(source_ids, rates=rates)
        if rows:
            publish(schema, {"type": "sources.update", "rows": rows})
    except Exception:
        PUBLISHED.labels("failed").inc()
        log.warning("console_update_failed", schema=schema, exc_info=True)


def watched(schemas: Iterable[str]) -> set[str]:
    """The schemas with an open console (a member in their channel-layer group), in one round trip.

    The monitor judges sources in batches many times a second; building
    their status rows for nobody would cost more than judging them. Reads
    channels_redis's group key (`<prefix>:group:<group>`, a sorted set of
    channels); when the layer is another one or Redis fails, every schema
    counts as watched, as before.
    """
    names = list(schemas)
    try:
        config: dict[str, Any] = dict(settings.CHANNEL_LAYERS["default"])
        if config.get("BACKEND") != "channels_redis.core.RedisChannelLayer":
            return set(names)
        prefix = str((config.get("CONFIG") or {}).get("prefix", "asgi"))
        with get_redis().pipeline(transaction=False) as pipe:
            for schema in names:
                pipe.exists(f"{prefix}:group:{group_for(schema)}")
            found = pipe.execute()
        return {schema for schema, present in zip(names, found, strict=True) if present}
    except Exception:
        log.warning("console_watch_check_failed", exc_info=True)
        return set(names)


def publish(schema: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return

    async def send() -> None:
        await asyncio.wait_for(layer.group_send(group_for(schema), message), SEND_TIMEOUT_S)

    async_to_sync(send)()
    PUBLISHED.labels("sent").inc()
