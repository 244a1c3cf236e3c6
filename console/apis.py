"""Diagnostics and the audit timeline over the API (docs/observability.md).

Here, in the console, because both read every layer below: the engines'
sources, polls and switches, healing's failures, RCA and actions, and the
console's own audit read model (console/audit.py), which the HTML timeline
uses too. The tenant is the API key's; another tenant's source is a 404.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from beastflow.problems import ProblemError
from console import openapi as docs
from console.audit import PAGE, AuditFilter, Entry, audit_entries
from console.diagnosis import Facts, next_step
from engines import selectors
from engines.apis import source_or_404
from engines.hysteresis import HysteresisPolicy
from engines.models import HealthSample, ModeSwitch, PollRun, Source, StreamState
from healing import selectors as healing_selectors
from healing.models import FailureStatus, HealingAction, HealingStatus, RCAResult

RECENT = 10
AUDIT_MAX_LIMIT = PAGE  # the read model reads at most this many of each kind
AUDIT_DEFAULT_LIMIT = 50


def _sample_render(sample: HealthSample) -> dict[str, Any]:
    return {
        "at": sample.at.isoformat(),
        "score": sample.score,
        "verdict": sample.verdict,
        "mode": sample.mode,
        "delivery_rate": sample.delivery_rate,
        "measures": sample.measures,
    }


def source_diagnostics(source: Source) -> dict[str, Any]:
    """One bundle for an operator: config, mode and hysteresis, signals, polls, switches, failures, next step."""
    now = time.time()
    stream = StreamState.objects.filter(source=source).first()
    samples = list(HealthSample.objects.filter(source=source).order_by("-at")[:RECENT])
    polls = list(PollRun.objects.filter(source=source).order_by("-started_at", "-id")[:RECENT])
    switches = list(ModeSwitch.objects.filter(source=source).order_by("-at", "-id")[:RECENT])
    failures = list(healing_selectors.failures(source_id=source.pk, status=FailureStatus.OPEN)[:RECENT])
    analyses: dict[int, RCAResult] = {}
    for rca in RCAResult.objects.filter(failure__in=failures).order_by("created_at", "id"):
        analyses[rca.failure_id] = rca  # the latest per failure
    awaiting = list(
        HealingAction.objects.filter(source=source, status=HealingStatus.AWAITING_APPROVAL).order_by("id")[:RECENT]
    )
    last_event = stream.last_event_at.timestamp() if stream and stream.last_event_at else None
    facts = Facts(
        paused=source.paused,
        mode=source.mode,
        mode_age_s=max(0.0, now - source.mode_since.timestamp()),
        health_score=source.health_score,
        last_event_age_s=None if last_event is None else max(0.0, now - last_event),
        last_poll_status=polls[0].status if polls else None,
        last_poll_error_kind=polls[0].error_kind if polls else "",
        open_failures=tuple(f.kind for f in failures),
        rca=tuple((rca.confirmed_category or rca.category, rca.confidence) for rca in analyses.values()),
        awaiting_approval=tuple(action.pk for action in awaiting),
    )
    return {
        "source": selectors.source_render(source),
        "mode": {
            "mode": source.mode,
            "since": source.mode_since.isoformat(),
            "seconds_in_mode": round(facts.mode_age_s, 1),
            "paused": source.paused,
            "hysteresis_state": source.hysteresis_state,
            "hysteresis_policy": dataclasses.asdict(HysteresisPolicy.from_config(source.hysteresis or {})),
        },
        "health": selectors.source_health(source),
        "signals": [_sample_render(sample) for sample in samples],
        "polls": [selectors.poll_run_render(run) for run in polls],
        "switches": [selectors.mode_switch_render(switch) for switch in switches],
        "failures": [
            healing_selectors.failure_render(failure)
            | {"rca": healing_selectors.rca_render(analyses[failure.pk]) if failure.pk in analyses else None}
            for failure in failures
        ],
        "healing_actions_awaiting": [healing_selectors.healing_action_render(action) for action in awaiting],
        "next_step": next_step(facts).as_dict(),
    }


class SourceDiagnosticsApi(APIView):
    @extend_schema(
        operation_id="sources_diagnostics",
        responses={200: docs.DiagnosticsOut},
        summary="Everything to diagnose one source: config, mode, signals, polls, failures, next step",
    )
    def get(self, request: Request, source_id: str) -> Response:
        return Response(source_diagnostics(source_or_404(source_id)))


def _entry_render(entry: Entry) -> dict[str, Any]:
    return {
        "at": entry.at.isoformat(),
        "kind": entry.kind,
        "source": entry.source_id,
        "source_name": entry.source_name or None,
        "title": entry.title,
        "summary": entry.summary,
        "actor": entry.actor or None,
        "status": entry.status or None,
        "correlation_id": entry.correlation_id or None,
        "data": entry.data,
    }


def audit_filter_parse(params: Any) -> tuple[AuditFilter, int]:
    """The console's filters, strictly: an unreadable value is a 400 naming the field, not silently dropped."""
    errors: list[dict[str, str]] = []
    known = [kind for kind, _ in AuditFilter.KINDS]
    raw_kinds = [part for value in params.getlist("kind") for part in value.split(",") if part]
    unknown = [kind for kind in raw_kinds if kind not in known]
    if unknown:
        errors.append({"field": "kind", "message": f"unknown {', '.join(unknown)}; one of {', '.join(known)}"})
    source_id = None
    if params.get("source"):
        try:
            source_id = int(params["source"])
        except ValueError:
            errors.append({"field": "source", "message": "not a source id"})
    window = params.get("window") or "24h"
    if window not in AuditFilter.WINDOWS:
        errors.append({"field": "window", "message": f"one of {', '.join(AuditFilter.WINDOWS)}"})
    correlation_id = (params.get("correlation") or "").strip()
    if len(correlation_id) > 128:
        errors.append({"field": "correlation", "message": "at most 128 characters"})
    until = None
    if params.get("cursor"):
        try:
            until = datetime.fromisoformat(params["cursor"])
            if until.tzinfo is None:
                raise ValueError
        except ValueError:
            errors.append({"field": "cursor", "message": "not a next_cursor of this endpoint"})
    limit = AUDIT_DEFAULT_LIMIT
    if params.get("limit"):
        try:
            limit = int(params["limit"])
            if not 1 <= limit <= AUDIT_MAX_LIMIT:
                raise ValueError
        except ValueError:
            errors.append({"field": "limit", "message": f"an integer from 1 to {AUDIT_MAX_LIMIT}"})
    if errors:
        raise ProblemError(400, "Some filters cannot be read.", errors=errors)
    flt = AuditFilter(
        source_id=source_id, kinds=tuple(raw_kinds), correlation_id=correlation_id, window=window, until=until
    )
    return flt, limit


class AuditApi(APIView):
    @extend_schema(
        operation_id="audit_list",
        responses={200: docs.AuditPage},
        summary="The audit timeline (switches, failures, RCA, healing, operator actions), newest first",
        parameters=[
            OpenApiParameter("source", int, description="Only this source's entries."),
            OpenApiParameter(
                "kind",
                {"type": "array", "items": {"type": "string", "enum": [kind for kind, _ in AuditFilter.KINDS]}},
                explode=True,
                description="Only entries of these kinds (repeated, or comma-separated).",
            ),
            OpenApiParameter(
                "correlation",
                {"type": "string", "maxLength": 128},
                description="Only entries caused by this request or task.",
            ),
            OpenApiParameter(
                "window",
                {"type": "string", "enum": list(AuditFilter.WINDOWS)},
                description="How far back (default 24h).",
            ),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": AUDIT_MAX_LIMIT},
                description=f"Page size, 1..{AUDIT_MAX_LIMIT} (default 50).",
            ),
            OpenApiParameter(
                "cursor",
                {"type": "string", "format": "date-time"},
                description="next_cursor of the previous page (an ISO timestamp with a time zone).",
            ),
        ],
    )
    def get(self, request: Request) -> Response:
        flt, limit = audit_filter_parse(request.query_params)
        if flt.source_id is not None:
            source_or_404(flt.source_id)  # another tenant's source: 404, like a missing one
        entries = audit_entries(flt, limit=limit)
        next_cursor = entries[-1].at.isoformat() if len(entries) == limit else None
        return Response({"results": [_entry_render(entry) for entry in entries], "next_cursor": next_cursor})
