"""The audit trail: one timeline per tenant or source across every kind of audit row.

Mode switches (engines), failures, RCA results and healing actions
(healing) and operator actions (console) are read newest first, each kind
bounded by the page size, and merged by time. Rows that share a correlation
id were caused by one request or task; the page links them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.apps import apps
from django.db.models import Q, QuerySet
from django.utils import timezone

from console.models import OperatorAction
from engines.models import ModeSwitch, Source
from healing.models import FailureRecord, HealingAction

PAGE = 200


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str
    source_id: int | None
    title: str
    summary: str = ""
    actor: str = ""
    status: str = ""
    correlation_id: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    source_name: str = ""

    @property
    def kind_label(self) -> str:
        return dict(AuditFilter.KINDS).get(self.kind, self.kind)


@dataclass(frozen=True)
class AuditFilter:
    KINDS: ClassVar[list[tuple[str, str]]] = [
        ("mode_switch", "Mode switch"),
        ("failure", "Failure"),
        ("rca", "RCA result"),
        ("healing", "Healing action"),
        ("operator", "Operator action"),
    ]
    WINDOWS: ClassVar[dict[str, timedelta | None]] = {
        "1h": timedelta(hours=1),
        "24h": timedelta(hours=24),
        "7d": timedelta(days=7),
        "all": None,
    }

    source_id: int | None = None
    kinds: tuple[str, ...] = ()
    correlation_id: str = ""
    window: str = "24h"
    # Only entries older than this (the API's cursor: the last entry of the previous page).
    until: datetime | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, Any]) -> AuditFilter:
        """Lenient: anything unreadable falls back to "no filter" rather than an error page."""
        getlist = getattr(query, "getlist", None)
        raw_kinds = getlist("kind") if getlist else [query.get("kind", "")]
        known = {k for k, _ in cls.KINDS}
        kinds = tuple(k for k in raw_kinds if k in known)
        try:
            source_id = int(query.get("source") or "") or None
        except ValueError:
            source_id = None
        window = str(query.get("window") or "24h")
        if window not in cls.WINDOWS:
            window = "24h"
        correlation_id = str(query.get("correlation") or "").strip()[:128]
        return cls(source_id=source_id, kinds=kinds, correlation_id=correlation_id, window=window)

    def wants(self, kind: str) -> bool:
        return not self.kinds or kind in self.kinds

    def since(self, now: datetime) -> datetime | None:
        span = self.WINDOWS[self.window]
        return None if span is None else now - span


def _bounded(qs: QuerySet[Any], flt: AuditFilter, *, at: str, source: str = "source_id") -> QuerySet[Any]:
    since = flt.since(timezone.now())
    if since is not None:
        qs = qs.filter(**{f"{at}__gte": since})
    if flt.until is not None:
        qs = qs.filter(**{f"{at}__lt": flt.until})
    if flt.source_id is not None:
        qs = qs.filter(**{source: flt.source_id})
    return qs.order_by(f"-{at}")


def _switches(flt: AuditFilter) -> Iterable[Entry]:
    qs = _bounded(ModeSwitch.objects.all(), flt, at="at")
    if flt.correlation_id:
        qs = qs.filter(correlation_id=flt.correlation_id)
    for s in qs[:PAGE]:
        verdict = "validated" if s.validated else "rolled back" if s.rolled_back else "not judged yet"
        if s.validated is False and not s.rolled_back:
            verdict = "did not help"
        yield Entry(
            at=s.at,
            kind="mode_switch",
            source_id=s.source_id,
            title=f"{s.from_mode} → {s.to_mode}",
            summary=s.reason,
            actor=s.actor or "monitor",
            status=s.to_mode,
            correlation_id=s.correlation_id,
            data={"transition": s.transition, "outcome": verdict, "signals": s.signals},
        )


def _failures(flt: AuditFilter) -> Iterable[Entry]:
    qs = _bounded(FailureRecord.objects.all(), flt, at="last_seen")
    if flt.correlation_id:
        qs = qs.filter(correlation_id=flt.correlation_id)
    for f in qs[:PAGE]:
        times = f"{f.occurrences} times since {f.first_seen:%Y-%m-%d %H:%M:%S} UTC" if f.occurrences > 1 else "once"
        yield Entry(
            at=f.last_seen,
            kind="failure",
            source_id=f.source_id,
            title=f.get_kind_display(),
            summary=f"seen {times}",
            status=f.status,
            correlation_id=f.correlation_id,
            data={"fingerprint": f.fingerprint, "detail": f.detail},
        )


def _rca_model() -> Any:
    # The RCA results land with the RCA work (healing); until then this kind is empty.
    try:
        return apps.get_model("healing", "RCAResult")
    except LookupError:
        return None


def _rcas(flt: AuditFilter) -> Iterable[Entry]:
    model = _rca_model()
    if model is None:
        return
    qs = _bounded(model.objects.select_related("failure"), flt, at="created_at")
    if flt.correlation_id:
        qs = qs.filter(failure__correlation_id=flt.correlation_id)
    for r in qs[:PAGE]:
        confirmed = getattr(r, "confirmed_category", "")
        verdict = "confirmed" if confirmed == r.category else "corrected"
        note = f": {r.confirm_note}" if getattr(r, "confirm_note", "") else ""
        yield Entry(
            at=r.created_at,
            kind="rca",
            source_id=r.source_id,
            title=f"{r.category} ({r.confidence:.0%} confident)",
            summary=f"{verdict} as {confirmed}{note}" if confirmed else "not confirmed by an operator yet",
            # The operator's word is the only human step of an RCA: who gave it is the audit.
            actor=getattr(r, "confirmed_by", ""),
            status="resolved" if confirmed else "proposed",
            correlation_id=r.failure.correlation_id if r.failure_id else "",
            data={"failure": r.failure_id, "evidence": r.evidence},
        )


def _healing(flt: AuditFilter) -> Iterable[Entry]:
    qs = _bounded(HealingAction.objects.all(), flt, at="requested_at")
    has_column = any(f.name == "correlation_id" for f in HealingAction._meta.get_fields())
    if flt.correlation_id:
        # The column lands with the healing work; before it, the id may sit in detail.
        by_column = Q(correlation_id=flt.correlation_id) if has_column else Q()
        qs = qs.filter(by_column | Q(detail__correlation_id=flt.correlation_id))
    for h in qs[:PAGE]:
        decided = f"decided by {h.decided_by}" if h.decided_by else ""
        yield Entry(
            at=h.requested_at,
            kind="healing",
            source_id=h.source_id,
            title=f"{h.get_strategy_display()} ({h.risk} risk)",
            summary="; ".join(part for part in (decided, h.reason) if part),
            actor=h.decided_by,
            status=h.status,
            correlation_id=str(getattr(h, "correlation_id", "") or (h.detail or {}).get("correlation_id", "")),
            data={"detail": h.detail, "outcome": h.outcome},
        )


def _operator(flt: AuditFilter) -> Iterable[Entry]:
    qs = _bounded(OperatorAction.objects.all(), flt, at="created_at")
    if flt.correlation_id:
        qs = qs.filter(correlation_id=flt.correlation_id)
    for a in qs[:PAGE]:
        yield Entry(
            at=a.created_at,
            kind="operator",
            source_id=a.source_id,
            title=a.get_action_display(),
            summary=a.reason or "no reason given",
            actor=a.actor,
            status="ok",
            correlation_id=a.correlation_id,
            data=a.detail,
            source_name=a.source_name,
        )


READERS = {
    "mode_switch": _switches,
    "failure": _failures,
    "rca": _rcas,
    "healing": _healing,
    "operator": _operator,
}


def audit_entries(flt: AuditFilter, *, limit: int = PAGE) -> list[Entry]:
    """The filtered timeline, newest first, at most `limit` entries."""
    entries: list[Entry] = []
    for kind, read in READERS.items():
        if flt.wants(kind):
            entries.extend(read(flt))
    entries.sort(key=lambda e: e.at, reverse=True)
    entries = entries[:limit]
    names = dict(Source.objects.filter(pk__in={e.source_id for e in entries if e.source_id}).values_list("pk", "name"))
    return [
        e if e.source_name or e.source_id is None else _named(e, names.get(e.source_id, f"#{e.source_id}"))
        for e in entries
    ]


def _named(entry: Entry, name: str) -> Entry:
    from dataclasses import replace

    return replace(entry, source_name=name)
