"""Capacity headroom and plain recommendations from what was measured.

Pure Python over plain data, no ORM: observability/capacity.py gathers the
measurements (the queues' lag over time, each tenant's ingest, polls and
callbacks) and calls `platform_recommendations` and `tenant_recommendations`.
Each rule says what it saw, in numbers, and one thing to do about it.

Rules (thresholds in `Thresholds`):

- a queue whose oldest message waits `queue_lag_warn_s` or more and whose
  lag is rising: add a worker consuming that queue; critical past
  `queue_lag_critical_s` (or the readiness bound, whichever is lower);
- a queue that waits long but steadily: add a worker too (it keeps up, late);
- the monitor's lag past `monitor_lag_warn_s`: add a monitor worker;
- a tenant at `quota_warn_pct` of its ingest quota at its busiest minute
  (info from `quota_info_pct`), or refused with 429s: raise the quota or
  batch;
- a tenant at `sources_warn_pct` of its source limit;
- ingest p99 over `ingest_p99_warn_ms`: the commit is slow (database);
- polls failing more than `poll_error_warn_pct`, or slow past `poll_p95_warn_s`;
- callbacks failing more than `callback_failure_warn_pct`, slow past
  `callback_p95_warn_ms`, or behind the feed past `callback_backlog_warn_s`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Recommendation:
    severity: Severity
    code: str
    subject: str  # the queue, "monitor", or the tenant's slug
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"severity": self.severity.value, "code": self.code, "subject": self.subject, "message": self.message}


@dataclass(frozen=True)
class Thresholds:
    queue_lag_warn_s: float = 5.0
    queue_lag_critical_s: float = 60.0
    rising_s_per_min: float = 0.5  # a lag growing this fast (least squares over the samples) is rising
    monitor_lag_warn_s: float = 10.0
    quota_info_pct: float = 75.0
    quota_warn_pct: float = 90.0
    sources_warn_pct: float = 90.0
    ingest_p99_warn_ms: float = 250.0
    poll_error_warn_pct: float = 20.0
    poll_p95_warn_s: float = 30.0
    callback_failure_warn_pct: float = 10.0
    callback_p95_warn_ms: float = 5000.0
    callback_backlog_warn_s: float = 300.0
    min_runs: int = 5  # fewer polls or deliveries than this in the window: too few to judge a rate


@dataclass(frozen=True)
class QueueFacts:
    """One queue: its lag now and the samples behind the trend, (epoch s, lag s) oldest first."""

    name: str
    depth: int
    lag_s: float | None
    samples: tuple[tuple[float, float], ...] = ()
    readiness_bound_s: float | None = None  # /readyz fails past this lag


@dataclass(frozen=True)
class PlatformFacts:
    queues: tuple[QueueFacts, ...]
    monitor_lag_s: float | None = None
    monitor_samples: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class TenantFacts:
    slug: str
    quota_events_per_s: float
    peak_events_per_s: float
    events_per_s: float
    throttled: int = 0
    ingest_p99_ms: float | None = None
    sources: int = 0
    max_sources: int = 0
    polls: int = 0
    polls_failed: int = 0
    poll_p95_s: float | None = None
    deliveries: int = 0
    deliveries_failed: int = 0
    callback_p95_ms: float | None = None
    callback_backlog_s: float | None = None


@dataclass(frozen=True)
class Headroom:
    """How much is left, in percent of the limit (None: no limit known)."""

    ingest_pct: float | None
    sources_pct: float | None
    extra: dict[str, float] = field(default_factory=dict)


def slope_per_min(samples: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (time s, value) samples, per minute; None with fewer than 3 or no time spread."""
    if len(samples) < 3:
        return None
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    spread = sum((t - mean_t) ** 2 for t, _ in samples)
    if spread <= 0:
        return None
    return 60.0 * sum((t - mean_t) * (v - mean_v) for t, v in samples) / spread


def percent(used: float, limit: float) -> float | None:
    return None if limit <= 0 else round(100.0 * used / limit, 1)


def tenant_headroom(facts: TenantFacts) -> Headroom:
    used_ingest = percent(facts.peak_events_per_s, facts.quota_events_per_s)
    used_sources = percent(facts.sources, facts.max_sources)
    return Headroom(
        ingest_pct=None if used_ingest is None else round(max(0.0, 100.0 - used_ingest), 1),
        sources_pct=None if used_sources is None else round(max(0.0, 100.0 - used_sources), 1),
    )


def platform_recommendations(facts: PlatformFacts, limits: Thresholds | None = None) -> list[Recommendation]:
    """Worker and queue advice, the most severe first."""
    limits = limits or Thresholds()
    found: list[Recommendation] = []
    for queue in facts.queues:
        found.extend(_queue(queue, limits))
    lag = facts.monitor_lag_s
    if lag is not None and lag >= limits.monitor_lag_warn_s:
        slope = slope_per_min(facts.monitor_samples)
        trend = f", rising {slope:.1f} s a minute" if slope is not None and slope >= limits.rising_s_per_min else ""
        severity = Severity.CRITICAL if lag >= limits.queue_lag_critical_s else Severity.WARNING
        found.append(
            Recommendation(
                severity,
                "monitor_lag",
                "monitor",
                f"monitor lag {lag:.0f} s{trend}: sources are judged late; "
                "add a worker consuming the monitor queue (BEASTFLOW_WORKER_QUEUES=monitor).",
            )
        )
    return _ordered(found)


def tenant_recommendations(facts: TenantFacts, limits: Thresholds | None = None) -> list[Recommendation]:
    """One tenant's advice, the most severe first."""
    limits = limits or Thresholds()
    found: list[Recommendation] = []
    slug = facts.slug
    used = percent(facts.peak_events_per_s, facts.quota_events_per_s)
    if used is not None and used >= limits.quota_info_pct:
        severity = Severity.WARNING if used >= limits.quota_warn_pct else Severity.INFO
        found.append(
            Recommendation(
                severity,
                "ingest_quota",
                slug,
                f"tenant {slug} at {used:.0f}% of its ingest quota ({facts.peak_events_per_s:,.0f} of "
                f"{facts.quota_events_per_s:,.0f} events/s at its busiest minute): "
                "raise ingest_rate_per_s before it is refused with 429s.",
            )
        )
    if facts.throttled > 0:
        found.append(
            Recommendation(
                Severity.WARNING,
                "ingest_throttled",
                slug,
                f"tenant {slug} was refused {facts.throttled} time(s) with 429 over its ingest quota: "
                "raise ingest_rate_per_s or ingest_burst, or have the sender batch and honour Retry-After.",
            )
        )
    used_sources = percent(facts.sources, facts.max_sources)
    if used_sources is not None and used_sources >= limits.sources_warn_pct:
        found.append(
            Recommendation(
                Severity.WARNING,
                "sources_quota",
                slug,
                f"tenant {slug} has {facts.sources} of its {facts.max_sources} sources ({used_sources:.0f}%): "
                "raise max_sources before the next source is refused.",
            )
        )
    if facts.ingest_p99_ms is not None and facts.ingest_p99_ms >= limits.ingest_p99_warn_ms:
        found.append(
            Recommendation(
                Severity.WARNING,
                "ingest_slow",
                slug,
                f"ingest p99 {facts.ingest_p99_ms:.0f} ms for tenant {slug}: the commit waits on the database; "
                "check beastflow_ingest_stage_seconds{stage=commit} and PostgreSQL's load, or add a web process.",
            )
        )
    if facts.polls >= limits.min_runs:
        error_pct = 100.0 * facts.polls_failed / facts.polls
        if error_pct >= limits.poll_error_warn_pct:
            found.append(
                Recommendation(
                    Severity.WARNING,
                    "polls_failing",
                    slug,
                    f"{error_pct:.0f}% of tenant {slug}'s polls failed ({facts.polls_failed} of {facts.polls}): "
                    "the upstream refuses or times out; see the failures and their RCA.",
                )
            )
    if facts.poll_p95_s is not None and facts.poll_p95_s >= limits.poll_p95_warn_s:
        found.append(
            Recommendation(
                Severity.INFO,
                "polls_slow",
                slug,
                f"tenant {slug}'s polls take {facts.poll_p95_s:.0f} s at p95: the upstream is slow or pages are "
                "large; polls hold a worker that long, so add a worker consuming the polls queue if it lags.",
            )
        )
    if facts.deliveries >= limits.min_runs:
        failure_pct = 100.0 * facts.deliveries_failed / facts.deliveries
        if failure_pct >= limits.callback_failure_warn_pct:
            found.append(
                Recommendation(
                    Severity.WARNING,
                    "callbacks_failing",
                    slug,
                    f"{failure_pct:.0f}% of tenant {slug}'s callback deliveries failed "
                    f"({facts.deliveries_failed} of {facts.deliveries}): the receiver is down or refusing.",
                )
            )
    if facts.callback_p95_ms is not None and facts.callback_p95_ms >= limits.callback_p95_warn_ms:
        found.append(
            Recommendation(
                Severity.INFO,
                "callbacks_slow",
                slug,
                f"tenant {slug}'s callback receivers answer in {facts.callback_p95_ms / 1000:.1f} s at p95: "
                "each delivery holds a callbacks worker that long.",
            )
        )
    if facts.callback_backlog_s is not None and facts.callback_backlog_s >= limits.callback_backlog_warn_s:
        found.append(
            Recommendation(
                Severity.WARNING,
                "callbacks_behind",
                slug,
                f"tenant {slug}'s callbacks are {facts.callback_backlog_s / 60:.0f} min behind the changes feed: "
                "the receiver is slow or failing, or the callbacks queue needs a worker.",
            )
        )
    return _ordered(found)


def _queue(queue: QueueFacts, limits: Thresholds) -> list[Recommendation]:
    lag = queue.lag_s
    if lag is None or lag < limits.queue_lag_warn_s:
        return []
    critical_at = limits.queue_lag_critical_s
    if queue.readiness_bound_s is not None:
        critical_at = min(critical_at, queue.readiness_bound_s)
    severity = Severity.CRITICAL if lag >= critical_at else Severity.WARNING
    slope = slope_per_min(queue.samples)
    add = f"add a worker consuming it (BEASTFLOW_WORKER_QUEUES={queue.name})"
    if slope is not None and slope >= limits.rising_s_per_min:
        message = (
            f"worker queue lag rising on {queue.name}: {lag:.0f} s now, growing {slope:.1f} s a minute, "
            f"{queue.depth} waiting: {add}."
        )
        return [Recommendation(severity, "queue_lag_rising", queue.name, message)]
    message = (
        f"queue {queue.name} makes its tasks wait {lag:.0f} s ({queue.depth} waiting): the workers keep up late; {add}."
    )
    return [Recommendation(severity, "queue_lag_high", queue.name, message)]


_RANK = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}


def _ordered(found: list[Recommendation]) -> list[Recommendation]:
    return sorted(found, key=lambda r: _RANK[r.severity])
