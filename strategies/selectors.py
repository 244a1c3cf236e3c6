"""Reads of strategies: versions, experiments, and the outcomes an experiment compares.

Outcomes come from the records the engines and healing already write, each
stamped with the strategy version that decided it (`strategy_version_id`):
only a record made under its source's arm version counts for that arm, so
nothing from before the experiment (or from a source moved out of it) leaks
into a sample.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, F, QuerySet, Sum

from engines.models import HealthSample, ModeSwitch, PollRun, ReconciliationRun, Source
from engines.modes import Verdict
from healing.models import FailureKind, FailureRecord, HealingAction, HealingStatus
from strategies.assignment import Arm
from strategies.models import Experiment, Metric, SourceStrategy, StrategyConfig, StrategyVersion
from strategies.params import diff
from strategies.tuner import Judged

Sample = tuple[datetime, bool, float]  # (when, treatment?, value)
MAX_JUDGED = 20_000


def _pk(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# -- versions ---------------------------------------------------------------------------


def configs() -> QuerySet[StrategyConfig]:
    return StrategyConfig.objects.all()


def config_get(name: str) -> StrategyConfig | None:
    return StrategyConfig.objects.filter(name=name).first()


def versions(*, config: str | None = None) -> QuerySet[StrategyVersion]:
    rows = StrategyVersion.objects.select_related("config", "restores").order_by("-id")
    return rows.filter(config__name=config) if config else rows


def version_get(config: str, number: Any) -> StrategyVersion | None:
    n = _pk(number)
    if n is None:
        return None
    return StrategyVersion.objects.select_related("config").filter(config__name=config, number=n).first()


def version_by_id(pk: Any) -> StrategyVersion | None:
    n = _pk(pk)
    return None if n is None else StrategyVersion.objects.select_related("config").filter(pk=n).first()


def version_render(version: StrategyVersion, *, sources: int | None = None) -> dict[str, Any]:
    """One version; `sources` (how many sources override to it) counted here unless given."""
    if sources is None:
        sources = SourceStrategy.objects.filter(version=version).count()
    return {
        "id": version.pk,
        "config": version.config.name,
        "number": version.number,
        "params": version.params,
        "author": version.author,
        "reason": version.reason,
        "restores": version.restores.number if version.restores_id and version.restores else None,
        "origin": version.origin,
        "created_at": _iso(version.created_at),
        "sources": sources,
    }


def versions_render(versions: Sequence[StrategyVersion]) -> list[dict[str, Any]]:
    """A page of versions with their override counts from one query (not one count per version)."""
    usage = version_usage([v.pk for v in versions])
    return [version_render(v, sources=usage.get(v.pk, 0)) for v in versions]


def version_diff(old: StrategyVersion, new: StrategyVersion) -> dict[str, Any]:
    return {
        "config": new.config.name,
        "from_number": old.number,
        "to_number": new.number,
        "changes": diff(old.params, new.params),
    }


# -- experiments ------------------------------------------------------------------------


def experiments(*, status: str | None = None) -> QuerySet[Experiment]:
    rows = Experiment.objects.select_related("control__config", "treatment__config").order_by("-id")
    return rows.filter(status=status) if status else rows


def experiment_get(pk: Any) -> Experiment | None:
    n = _pk(pk)
    return None if n is None else experiments().filter(pk=n).first()


def experiment_render(experiment: Experiment) -> dict[str, Any]:
    arms: dict[str, int] = defaultdict(int)
    strata: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for arm, stratum in experiment.assignments.values_list("arm", "stratum"):
        arms[arm] += 1
        strata[stratum][arm] += 1
    return {
        "id": experiment.pk,
        "name": experiment.name,
        "status": experiment.status,
        "metric": experiment.metric,
        "control": {"id": experiment.control_id, "label": str(experiment.control)},
        "treatment": {"id": experiment.treatment_id, "label": str(experiment.treatment)},
        "coverage": experiment.coverage,
        "share": experiment.share,
        "stratify_by": experiment.stratify_by,
        "bucket_s": experiment.bucket_s,
        "guardrails": experiment.guardrails,
        "alpha": experiment.alpha,
        "arms": {"control": arms.get("control", 0), "treatment": arms.get("treatment", 0)},
        "strata": {name: dict(counts) for name, counts in sorted(strata.items())},
        "result": experiment.result or None,
        "p_value": experiment.p_value,
        "started_by": experiment.started_by,
        "started_at": _iso(experiment.started_at),
        "evaluated_at": _iso(experiment.evaluated_at),
        "ended_at": _iso(experiment.ended_at),
        "end_reason": experiment.end_reason,
        "decided_by": experiment.decided_by,
    }


def _arms(experiment: Experiment) -> dict[int, tuple[bool, int]]:
    """source id -> (treatment?, the arm's version id)."""
    out = {}
    for source_id, arm in experiment.assignments.values_list("source_id", "arm"):
        treatment = arm == Arm.TREATMENT.value
        out[source_id] = (treatment, experiment.treatment_id if treatment else experiment.control_id)
    return out


def samples(experiment: Experiment, *, now: datetime) -> list[Sample]:
    """The experiment's outcomes so far, oldest first: one value per episode, outcome or bucket."""
    arms = _arms(experiment)
    if not arms:
        return []
    metric = experiment.metric
    if metric == Metric.TIME_TO_DETECT:
        found = _detect_samples(experiment, arms)
    elif metric == Metric.TIME_TO_EVENT:
        found = _away_samples(experiment, arms)
    elif metric == Metric.RECORDS_LOST:
        found = _lost_samples(experiment, arms)
    elif metric == Metric.HEALING_SUCCESS:
        found = _healing_samples(experiment, arms)
    elif metric == Metric.SWITCHES_PER_HOUR:
        found = _bucket_samples(experiment, arms, now, ModeSwitch.objects.all(), "at")
    else:
        found = _bucket_samples(experiment, arms, now, PollRun.objects.all(), "started_at")
    return sorted(found, key=lambda s: (s[0], s[1]))


def _mine(arms: dict[int, tuple[bool, int]], source_id: int, version_id: int | None) -> bool:
    """The record was made under its source's arm version."""
    arm = arms.get(source_id)
    return arm is not None and version_id == arm[1]


def _switches(experiment: Experiment, arms: dict[int, tuple[bool, int]]) -> QuerySet[ModeSwitch]:
    return ModeSwitch.objects.filter(
        source_id__in=list(arms), at__gte=experiment.started_at, strategy_version_id__isnull=False
    ).order_by("at", "id")


def _detect_samples(experiment: Experiment, arms: dict[int, tuple[bool, int]]) -> list[Sample]:
    """Per degrade switch: the push's silence when the source left event mode (how long the outage went unseen)."""
    out = []
    for row in _switches(experiment, arms).filter(transition="degrade"):
        if not _mine(arms, row.source_id, row.strategy_version_id):
            continue
        measures = (row.signals.get("health") or {}).get("measures") or {}
        silence = measures.get("silence_s")
        if isinstance(silence, int | float):
            out.append((row.at, arms[row.source_id][0], float(silence)))
    return out


def _away_samples(experiment: Experiment, arms: dict[int, tuple[bool, int]]) -> list[Sample]:
    """Per excursion: from leaving event mode (degrade) to being back (validated)."""
    out = []
    left: dict[int, datetime] = {}
    for row in _switches(experiment, arms):
        if not _mine(arms, row.source_id, row.strategy_version_id):
            continue
        if row.transition == "degrade":
            left.setdefault(row.source_id, row.at)
        elif row.to_mode == "event" and row.source_id in left:
            start = left.pop(row.source_id)
            out.append((row.at, arms[row.source_id][0], (row.at - start).total_seconds()))
    return out


def _lost_samples(experiment: Experiment, arms: dict[int, tuple[bool, int]]) -> list[Sample]:
    """Per reconciliation run: the records it found missing, changed or deleted (lost by push and polls)."""
    rows = ReconciliationRun.objects.filter(
        source_id__in=list(arms), started_at__gte=experiment.started_at, status="succeeded"
    ).values_list("source_id", "finished_at", "missing", "changed", "deleted")
    return [
        (finished, arms[source_id][0], float(missing + changed + deleted))
        for source_id, finished, missing, changed, deleted in rows
        if finished is not None
    ]


def _healing_samples(experiment: Experiment, arms: dict[int, tuple[bool, int]]) -> list[Sample]:
    """Per judged healing action: 1 when it succeeded, 0 when it failed."""
    rows = HealingAction.objects.filter(
        source_id__in=list(arms),
        requested_at__gte=experiment.started_at,
        status__in=[HealingStatus.SUCCEEDED, HealingStatus.FAILED],
    ).values_list("source_id", "strategy_version_id", "updated_at", "status")
    return [
        (at, arms[source_id][0], 1.0 if status == HealingStatus.SUCCEEDED else 0.0)
        for source_id, version_id, at, status in rows
        if source_id is not None and _mine(arms, source_id, version_id)
    ]


def _bucket_samples(
    experiment: Experiment, arms: dict[int, tuple[bool, int]], now: datetime, rows: QuerySet[Any], at_field: str
) -> list[Sample]:
    """Per source and whole bucket since the start: the records in it, per hour (a bucket without any is 0)."""
    bucket = timedelta(seconds=experiment.bucket_s)
    whole = int((now - experiment.started_at) / bucket)
    if whole < 1:
        return []
    end = experiment.started_at + whole * bucket
    counts: dict[tuple[int, int], int] = defaultdict(int)
    records = rows.filter(
        source_id__in=list(arms), **{f"{at_field}__gte": experiment.started_at, f"{at_field}__lt": end}
    ).values_list("source_id", "strategy_version_id", at_field)
    for source_id, version_id, at in records:
        if _mine(arms, source_id, version_id):
            counts[(source_id, int((at - experiment.started_at) / bucket))] += 1
    per_hour = 3600.0 / experiment.bucket_s
    return [
        (experiment.started_at + (k + 1) * bucket, treatment, counts[(source_id, k)] * per_hour)
        for k in range(whole)
        for source_id, (treatment, _) in arms.items()
    ]


def guardrail_counts(experiment: Experiment) -> dict[str, dict[str, float]]:
    """Per guardrail, per arm: flapping failures and records reconciliation found lost, per source."""
    arms = _arms(experiment)
    size = {
        True: max(1, sum(1 for t, _ in arms.values() if t)),
        False: max(1, sum(1 for t, _ in arms.values() if not t)),
    }
    flaps: dict[bool, float] = {True: 0.0, False: 0.0}
    for source_id, occurrences in (
        FailureRecord.objects.filter(
            source_id__in=list(arms), kind=FailureKind.FLAPPING, last_seen__gte=experiment.started_at
        )
        .values("source_id")
        .annotate(n=Sum("occurrences"))
        .values_list("source_id", "n")
    ):
        flaps[arms[source_id][0]] += occurrences or 0
    lost: dict[bool, float] = {True: 0.0, False: 0.0}
    for source_id, n in (
        ReconciliationRun.objects.filter(
            source_id__in=list(arms), started_at__gte=experiment.started_at, status="succeeded"
        )
        .values("source_id")
        .annotate(n=Sum(F("missing") + F("changed") + F("deleted")))
        .values_list("source_id", "n")
    ):
        lost[arms[source_id][0]] += n or 0
    return {
        "flaps_per_source": {"control": flaps[False] / size[False], "treatment": flaps[True] / size[True]},
        "records_lost_per_source": {"control": lost[False] / size[False], "treatment": lost[True] / size[True]},
    }


def version_usage(version_ids: Sequence[int]) -> dict[int, int]:
    """How many sources override to each of these versions (absent: none)."""
    rows = SourceStrategy.objects.filter(version_id__in=list(version_ids)).values("version_id")
    return dict(rows.annotate(n=Count("id")).values_list("version_id", "n"))


def judged_history(source: Source, *, hours: float) -> tuple[list[Judged], int]:
    """The source's recorded verdicts (health samples) of the last `hours`, oldest first, and its switches then.

    A bad verdict counts as the push going quiet when silence was over its
    allowance: what engines.monitor._silent would have said, from the measures kept.
    """
    from django.utils import timezone

    since = timezone.now() - timedelta(hours=hours)
    samples = HealthSample.objects.filter(source=source, at__gte=since).order_by("-at")
    # The newest MAX_JUDGED at most: the tuner replays them once per candidate, within a request.
    rows = reversed(list(samples.values_list("at", "verdict", "measures")[:MAX_JUDGED]))
    judged = []
    for at, verdict, measures in rows:
        silence, allowed = (measures or {}).get("silence_s"), (measures or {}).get("allowed_silence_s")
        quiet = isinstance(silence, int | float) and isinstance(allowed, int | float) and silence > allowed
        judged.append(Judged(at=at.timestamp(), verdict=Verdict(verdict), silent=bool(quiet and verdict == "bad")))
    switched = ModeSwitch.objects.filter(source=source, at__gte=since).count()
    return judged, switched
