"""The live overview hears what the engines announce (engines/outbound.py) and refreshes open consoles.

Subscribed in ConsoleConfig.ready(); console.live never raises.
"""

from __future__ import annotations

from console.live import sources_changed, watched
from engines import outbound


def _switched(event: outbound.ModeSwitched) -> None:
    sources_changed(event.schema, [event.source_id])


def _judged(event: outbound.SourcesJudged) -> None:
    # One message per tenant and batch to its open consoles; nobody watching, no work.
    for schema in watched(list(event.by_schema)):
        sources_changed(schema, event.by_schema[schema], rates=event.rates)


def listen() -> None:
    outbound.subscribe(outbound.ModeSwitched, _switched)
    outbound.subscribe(outbound.SourcesJudged, _judged)
