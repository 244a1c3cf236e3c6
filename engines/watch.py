"""BeastFlow's own outages, as the monitor sees them: silence it caused is not the upstream's.

While BeastFlow is down (a restart, its database or its workers gone),
nothing is received and nothing is judged. When it comes back, every
pushing source whose upstream has not pushed again yet shows a silence
that started before the outage; judged as it stands, that silence would
be the upstream's, and every source due at once would take a bad verdict
on the monitor's first passes (docs/modes.md).

Every monitor pass stamps the time it starts (one Redis `SET ... GET`). A
pass that finds the previous stamp older than
`BEASTFLOW_MONITOR_OUTAGE_S` records the outage, previous stamp to now;
judgements read it with the monitor's memory and leave the part of each
silence inside it uncounted (engines.health.own_outage_within). Only the
latest outage is kept: an older one has long been judged past.

The cost, said plainly: a stream that really died during the outage is
found silent one allowed silence after the monitor's return rather than at
once. Its events are not lost for that: pushes the upstream retries arrive,
and seq gaps and reconciliation find the rest. A stamp lost with Redis
records no outage (nothing to forgive is the safe reading).
"""

from __future__ import annotations

import time

import structlog
from django.conf import settings
from prometheus_client import Counter

from beastflow.redis_client import get_redis, key

log = structlog.get_logger(__name__)

OUTAGES = Counter(
    "beastflow_monitor_outages_total",
    "BeastFlow's own outages the monitor found on its return (no pass for BEASTFLOW_MONITOR_OUTAGE_S)",
)


def stamp_key() -> str:
    return key("watch", "stamp")


def outage_key() -> str:
    return key("watch", "outage")


def outage_of(previous: float | None, now: float, *, threshold_s: float) -> tuple[float, float] | None:
    """The outage a pass starting at `now` ends, given the previous stamp; None when there was none (pure)."""
    if previous is None or threshold_s <= 0 or now - previous <= threshold_s:
        return None
    return previous, now


def watch_stamp(*, now: float | None = None) -> tuple[float, float] | None:
    """Stamp a monitor pass starting now; the outage it ends, recorded, or None."""
    now = time.time() if now is None else now
    client = get_redis()
    raw = client.set(stamp_key(), repr(now), get=True)
    outage = outage_of(float(raw) if raw is not None else None, now, threshold_s=settings.BEASTFLOW_MONITOR_OUTAGE_S)
    if outage is not None:
        client.set(outage_key(), f"{outage[0]!r},{outage[1]!r}")
        OUTAGES.inc()
        log.warning(
            "monitor_outage_seen",
            seconds=round(outage[1] - outage[0], 1),
            since=outage[0],
            note="silence inside the outage is not counted against the sources' upstreams",
        )
    return outage


def outage_parse(raw: bytes | str | None) -> tuple[float, float] | None:
    """The recorded outage from its Redis value (read in the monitor's memory pipeline); None if none or unreadable."""
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    try:
        start, end = (float(part) for part in text.split(","))
    except ValueError:
        return None
    return (start, end) if start <= end else None
