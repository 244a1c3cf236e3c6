"""Read models of the console pages and of the live overview.

A source's status row is the unit of the overview: rendered into the
table on page load and sent, in the same shape, over the websocket each
monitor tick (console.live), so the page and the live updates never
disagree about what a field means.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.db.models import Count
from django.urls import reverse

from callbacks.models import Delivery, Subscription
from console.formatting import health_band, rate_text
from console.models import OperatorAction
from engines.connectors.presets import preset_get
from engines.models import Change, HealthSample, ModeSwitch, PollRun, PollTrigger, Source, StreamState
from engines.schemas import Connector, PushScheme
from engines.selectors import source_health
from healing.models import FailureRecord, FailureStatus

MODE_LABELS = {"event": "Event (push)", "hybrid": "Hybrid", "polling": "Polling"}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def latest_rates(source_ids: Iterable[int] | None = None) -> dict[int, float | None]:
    """Each source's delivery rate from its newest health sample (the live path sends fresher ones)."""
    samples = HealthSample.objects.order_by("source_id", "-at").distinct("source_id")
    if source_ids is not None:
        samples = samples.filter(source_id__in=list(source_ids))
    return {row["source_id"]: row["delivery_rate"] for row in samples.values("source_id", "delivery_rate")}


def open_failures(source_ids: Iterable[int] | None = None) -> dict[int, int]:
    failures = FailureRecord.objects.filter(status=FailureStatus.OPEN, source_id__isnull=False)
    if source_ids is not None:
        failures = failures.filter(source_id__in=list(source_ids))
    return {row["source_id"]: row["n"] for row in failures.values("source_id").annotate(n=Count("id"))}


def status_row(source: Source, stream: StreamState | None, *, rate: float | None, failures: int) -> dict[str, Any]:
    """One source in the overview; JSON-ready (the websocket sends it as is)."""
    score = source.health_score
    band = "paused" if source.paused else health_band(score)
    return {
        "id": source.pk,
        "name": source.name,
        "url": reverse("console:source", args=[source.pk]),
        "mode": source.mode,
        "mode_label": MODE_LABELS.get(source.mode, source.mode),
        "mode_since": _iso(source.mode_since),
        "paused": source.paused,
        "health_score": score,
        "health_band": band,
        "verdict": source.verdict or None,
        "events_per_s": None if rate is None else round(rate, 3),
        "events_per_s_text": rate_text(rate),
        "last_event_at": _iso(stream.last_event_at) if stream else None,
        "contiguous_seq": stream.contiguous_seq if stream else None,
        "upstream_seq": _upstream_newest(stream),
        "highest_seq": stream.highest_seq if stream else None,
        "seq_behind": _behind(stream),
        "open_failures": failures,
    }


def _upstream_newest(stream: StreamState | None) -> int | None:
    """The upstream's newest seq as far as we know: its last heartbeat, or a seq we saw since.

    During an outage of the push, heartbeats stop while polls keep reading
    newer seqs; the heartbeat's figure alone would show us "ahead" of it.
    """
    if stream is None:
        return None
    known = [seq for seq in (stream.upstream_seq, stream.highest_seq) if seq is not None]
    return max(known) if known else None


def _behind(stream: StreamState | None) -> int | None:
    newest = _upstream_newest(stream)
    if stream is None or newest is None:
        return None
    return max(0, newest - (stream.contiguous_seq or 0))


def source_rows(
    source_ids: Iterable[int] | None = None, *, rates: Mapping[int, float | None] | None = None
) -> list[dict[str, Any]]:
    """Status rows of the current tenant's sources (all, or these), by name. Four queries whatever the count."""
    sources = Source.objects.order_by("name")
    ids = None if source_ids is None else list(source_ids)
    if ids is not None:
        sources = sources.filter(pk__in=ids)
    sources_list = list(sources)
    streams = {s.source_id: s for s in StreamState.objects.filter(source_id__in=[s.pk for s in sources_list])}
    known = latest_rates(ids)
    if rates:
        known.update(rates)
    failures = open_failures(ids)
    return [
        status_row(s, streams.get(s.pk), rate=known.get(s.pk), failures=failures.get(s.pk, 0)) for s in sources_list
    ]


def rows_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    modes = {mode: sum(1 for r in rows if r["mode"] == mode and not r["paused"]) for mode in MODE_LABELS}
    rates = [r["events_per_s"] for r in rows if r["events_per_s"] is not None]
    return {
        "sources": len(rows),
        "modes": modes,
        "paused": sum(1 for r in rows if r["paused"]),
        "open_failures": sum(r["open_failures"] for r in rows),
        "events_per_s": rate_text(sum(rates) if rates else None),
    }


def source_choices() -> list[tuple[int, str]]:
    return list(Source.objects.order_by("name").values_list("pk", "name"))


def source_series(source: Source, *, limit: int = 8640) -> dict[str, Any]:
    """The retained health samples, oldest first, as columns for the charts (uPlot's shape)."""
    samples = list(
        HealthSample.objects.filter(source=source)
        .order_by("-at")
        .values_list("at", "score", "delivery_rate", "mode")[:limit]
    )
    samples.reverse()
    switches = ModeSwitch.objects.filter(source=source).order_by("at").values_list("at", "to_mode", "reason")
    return {
        "t": [row[0].timestamp() for row in samples],
        "score": [row[1] for row in samples],
        "rate": [row[2] for row in samples],
        "mode": [row[3] for row in samples],
        "switches": [{"t": at.timestamp(), "to": to, "reason": reason} for at, to, reason in switches],
    }


def subscriptions_for(source: Source) -> list[dict[str, Any]]:
    """Subscriptions that deliver this source's changes, with their delivery state."""
    rows = []
    for sub in Subscription.objects.order_by("id"):
        if sub.sources is not None and source.pk not in sub.sources:
            continue
        last = Delivery.objects.filter(subscription=sub).order_by("-id").first()
        rows.append({"subscription": sub, "last": last, "all_sources": sub.sources is None})
    return rows


# The mapping fields in the order a reader follows them (docs/contract.md §8.2 names them).
PUSH_MAPPING_FIELDS = ("filter", "items", "id", "key", "version", "op", "data", "occurred_at")
RECORD_MAPPING_FIELDS = ("records", "key", "version", "op", "data")


def source_upstream(source: Source) -> dict[str, Any]:
    """How the source talks to its upstream: preset, push scheme and mapping, listing, and the last audit poll."""
    push = source.push or {}
    config = source.config or {}
    preset = preset_get(source.preset) if source.preset else None
    mapping = push.get("mapping") or {}
    rest = source.connector == Connector.REST
    pagination = config.get("pagination") or {}
    last_audit = PollRun.objects.filter(source=source, trigger=PollTrigger.AUDIT).order_by("-started_at", "-id").first()
    return {
        "preset": source.preset or None,
        # A preset file removed since the source was made: its name still shows.
        "preset_title": preset.title if preset is not None else None,
        "scheme": push.get("scheme") or PushScheme.BEASTFLOW.value,
        "push_expected": source.push_expected,
        "secret_set": bool(source.push_secret_encrypted),
        "tolerance_s": push.get("tolerance_s"),
        "push_mapping": [(name, mapping[name]) for name in PUSH_MAPPING_FIELDS if mapping.get(name)],
        "rest": rest,
        "listing": {
            "url": f"{str(config.get('base_url', '')).rstrip('/')}{config.get('list_path', '')}",
            "params": config.get("params") or {},
            "pagination": pagination.get("style", "link"),
            "since": config.get("since_param"),
        }
        if rest
        else None,
        "record_mapping": [(name, config[name]) for name in RECORD_MAPPING_FIELDS if config.get(name)] if rest else [],
        "audit_interval_s": (source.poll or {}).get("audit_interval_s"),
        "last_audit": last_audit,
        "last_audit_details": _audit_details(last_audit),
    }


def _audit_details(run: PollRun | None) -> list[tuple[str, Any]]:
    """The audit's facts as (name, value) rows, the missed keys first: what push lost is what a reader wants."""
    if run is None or not isinstance(run.details, dict):
        return []
    return sorted(run.details.items(), key=lambda item: (item[0] not in ("missed_keys", "missed"), item[0]))


def source_page(source: Source) -> dict[str, Any]:
    """Everything the source detail page shows."""
    stream = StreamState.objects.filter(source=source).first()
    row = source_rows([source.pk])[0]
    poll_state = source.poll_state or {}
    return {
        "source": source,
        "row": row,
        "health": source_health(source),
        "stream": stream,
        "switches": list(ModeSwitch.objects.filter(source=source).order_by("-at", "-id")[:30]),
        "polls": list(PollRun.objects.filter(source=source).order_by("-started_at", "-id")[:15]),
        "poll_errors": list(PollRun.objects.filter(source=source, status="failed").order_by("-started_at", "-id")[:5]),
        "poll_interval_s": poll_state.get("interval_s"),
        "poll_error_streak": poll_state.get("errors", 0),
        "reconciliations": list(source.reconciliations.order_by("-id")[:10]),
        "changes": list(Change.objects.filter(source_id=source.pk).order_by("-seq")[:15]),
        "subscriptions": subscriptions_for(source),
        "failures": list(FailureRecord.objects.filter(source=source).order_by("-last_seen")[:10]),
        "operator_actions": list(OperatorAction.objects.filter(source=source).order_by("-created_at")[:10]),
        "modes": list(MODE_LABELS.items()),
        "upstream": source_upstream(source),
    }
