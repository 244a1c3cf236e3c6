"""Deliveries hear what the engines announce (engines/outbound.py): committed changes wake them.

Subscribed in CallbacksConfig.ready().
"""

from __future__ import annotations

from callbacks.wake import wake_deliveries
from engines import outbound


def _committed(event: outbound.ChangesCommitted) -> None:
    wake_deliveries(event.schema)


def listen() -> None:
    outbound.subscribe(outbound.ChangesCommitted, _committed)
