"""Writes of strategies: versions, assignments, experiments. Each atomic, guarded against races.

How the engines get a version's parameters, and why this way: the engines
must not import strategies (it sits above them, beside healing). A source
row already carries the parameters the judge and the poller read on every
pass (`hysteresis`, `health`, `poll`), so assigning a version writes its
parameters there and stamps `Source.strategy_version_id`. The effective
version is thus resolved once, when it is assigned, not on the hot path:
the judge's batch loads it with the source row it loads anyway, and copies
the id onto each switch (engines/switching.py), the poller onto each poll
run and healing onto each action. A hook asked on every judgement would
have cost a lookup per source per batch for a value that changes when an
operator acts.

Only the adaptive fields are written: the whole `hysteresis`, the health
thresholds, and the poll interval bounds (the source keeps its own page
budget and audit interval, which are about its upstream, not about policy).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import structlog
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from beastflow.redis_client import get_redis, key
from beastflow.tenancy import current_schema
from engines import source_ops
from engines.models import Source, StreamState
from strategies import metrics
from strategies.assignment import Arm, Unit, assign
from strategies.models import (
    ENDED,
    HIGHER_IS_BETTER,
    Assignment,
    Experiment,
    ExperimentStatus,
    Metric,
    SourceStrategy,
    StrategyConfig,
    StrategyVersion,
    TenantStrategy,
)
from strategies.params import StrategyParams, merged, validate_params
from strategies.sequential import SequentialTest
from strategies.tuner import tune_recording, tune_verdicts

log = structlog.get_logger(__name__)

POLL_KEYS = ("min_interval_s", "max_interval_s")
STRATIFY = ("connector", "mode", "traffic")
DEFAULT_GUARDRAILS: dict[str, float] = {
    # Flapping failures per source: treatment above control by more than this stops the experiment.
    "flaps_per_source": 1.0,
    # Records reconciliation found lost (missing, changed, deleted) per source, treatment above control.
    "records_lost_per_source": 10.0,
}
RUNNING_KEY = "strategies-running"  # a Redis set of the schemas with a running experiment


class StrategyError(Exception):
    """A refused write: `status` and `detail` become the problem+json answer."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.errors = status, detail, errors or []


# -- versions ----------------------------------------------------------------------------


@transaction.atomic
def version_create(
    *,
    config_name: str,
    params: Mapping[str, Any],
    author: str,
    reason: str,
    description: str = "",
    restores: StrategyVersion | None = None,
    origin: dict[str, Any] | None = None,
) -> StrategyVersion:
    """A new version of `config_name` (made on first use): `params` over the latest version's.

    A version names only what it changes; the rest comes from the version
    before it (or the defaults, for the first). Validated as a whole.
    """
    config, _ = StrategyConfig.objects.get_or_create(name=config_name, defaults={"description": description})
    config = StrategyConfig.objects.select_for_update().get(pk=config.pk)  # numbers are handed out one at a time
    latest = config.versions.order_by("-number").first()
    base = latest.params if latest is not None else StrategyParams().stored()
    valid, errors = validate_params(merged(base, params))
    if valid is None:
        raise StrategyError(422, "The parameters are not valid.", errors)
    number = (config.versions.aggregate(top=Max("number"))["top"] or 0) + 1
    version = StrategyVersion.objects.create(
        config=config,
        number=number,
        params=valid.stored(),
        author=author,
        reason=reason,
        restores=restores,
        origin=origin or {},
    )
    metrics.VERSIONS.inc()
    log.info("strategy_version_created", config=config.name, number=number, author=author, restores=restores)
    return version


def version_rollback(*, version: StrategyVersion, author: str, reason: str) -> StrategyVersion:
    """Roll the config back to `version`: a new version equal to it (history is never rewritten)."""
    return version_create(
        config_name=version.config.name, params=version.params, author=author, reason=reason, restores=version
    )


# -- what each source runs -----------------------------------------------------------


def tenant_strategy() -> TenantStrategy:
    row, _ = TenantStrategy.objects.get_or_create(pk=1)
    return row


def effective_version(source: Source) -> StrategyVersion | None:
    """The source's override, else the tenant default, else None (the source's own parameters)."""
    override = SourceStrategy.objects.filter(source=source).select_related("version").first()
    if override is not None:
        return override.version
    return tenant_strategy().default_version


@transaction.atomic
def tenant_default_set(*, version: StrategyVersion | None, actor: str, auto_promote: bool | None = None) -> int:
    """Make `version` the tenant default; every source without an override takes it. Returns how many did."""
    row = TenantStrategy.objects.select_for_update().get_or_create(pk=1)[0]
    row.default_version = version
    if auto_promote is not None:
        row.auto_promote = auto_promote
    row.save()
    log.info("strategy_default_set", version=version.pk if version else None, actor=actor)
    if version is None:
        return 0
    following = Source.objects.exclude(pk__in=SourceStrategy.objects.values("source_id"))
    return sum(_apply(source, version) for source in following)


@transaction.atomic
def source_version_set(
    *, source: Source, version: StrategyVersion, actor: str, experiment: Experiment | None = None
) -> None:
    SourceStrategy.objects.update_or_create(
        source=source, defaults={"version": version, "assigned_by": actor, "experiment": experiment}
    )
    _apply(source, version)


@transaction.atomic
def source_version_clear(*, source: Source, actor: str) -> None:
    """Back to the tenant default (when there is none the source keeps its parameters, unversioned)."""
    SourceStrategy.objects.filter(source=source).delete()
    default = tenant_strategy().default_version
    if default is not None:
        _apply(source, default)
    else:
        source_ops.parameters_set(source, {"strategy_version_id": None}, edit=False)  # the same parameters, unversioned
    log.info("strategy_override_cleared", source=source.pk, actor=actor)


def source_follow_default(*, source: Source) -> bool:
    """A new source takes the tenant default, if there is one (its fields on the row and on `source`)."""
    row = TenantStrategy.objects.select_related("default_version").filter(pk=1).first()
    if row is None or row.default_version is None:
        return False
    return _apply(source, row.default_version)


def source_fields(source: Source, version: StrategyVersion) -> dict[str, Any]:
    """What the source row holds under `version` (see the module's note on the adaptive fields)."""
    params = version.params
    poll = {**(source.poll or {}), **{k: params["poll"][k] for k in POLL_KEYS if k in params.get("poll", {})}}
    return {
        "hysteresis": dict(params["hysteresis"]),
        "health": {**(source.health or {}), **params["health"]},
        "poll": poll,
        "strategy_version_id": version.pk,
    }


def _apply(source: Source, version: StrategyVersion) -> bool:
    # An edit: judged at once under its new parameters (engines.source_ops.parameters_set).
    return source_ops.parameters_set(source, source_fields(source, version), edit=True)


# -- experiments -----------------------------------------------------------------------


def experiment_start(
    *,
    name: str,
    control: StrategyVersion,
    treatment: StrategyVersion,
    metric: str,
    actor: str,
    coverage: float = 1.0,
    share: float = 0.5,
    stratify_by: Iterable[str] = STRATIFY,
    guardrails: Mapping[str, float] | None = None,
    bucket_s: float = 3600.0,
    alpha: float = 0.05,
    source_ids: Iterable[int] | None = None,
) -> Experiment:
    """Start comparing two versions on a share of the tenant's sources. Steps:

    1. Refuse the same version twice, an unknown metric or stratum, a second running experiment (409).
    2. Place the sources (strategies.assignment: by id, stratified, balanced).
    3. Pin each to its arm's version (an override tagged with the experiment),
       remembering what it ran before, so ending the experiment restores it.
    """
    if control.pk == treatment.pk:
        raise StrategyError(422, "The control and the treatment are the same version.")
    if metric not in Metric.values:
        raise StrategyError(422, f"metric must be one of {', '.join(Metric.values)}")
    stratify = list(stratify_by)
    unknown = [s for s in stratify if s not in STRATIFY]
    if unknown:
        raise StrategyError(422, f"stratify_by takes {', '.join(STRATIFY)}; not {', '.join(unknown)}")
    rails = {**DEFAULT_GUARDRAILS, **(guardrails or {})}
    try:
        with transaction.atomic():
            experiment = Experiment.objects.create(
                name=name,
                control=control,
                treatment=treatment,
                metric=metric,
                coverage=coverage,
                share=share,
                salt=secrets.token_hex(8),
                stratify_by=stratify,
                guardrails=rails,
                bucket_s=bucket_s,
                alpha=alpha,
                started_by=actor,
                started_at=timezone.now(),
            )
            sources = Source.objects.all()
            if source_ids is not None:
                sources = sources.filter(pk__in=list(source_ids))
            units = _units(list(sources), stratify)
            placed = assign(units.values(), salt=experiment.salt, share=share, coverage=coverage)
            if not placed or all(arm is Arm.CONTROL for arm in placed.values()):
                raise StrategyError(422, "Too few sources to split into two arms.")
            overrides = dict(SourceStrategy.objects.values_list("source_id", "version_id"))
            by_id = {s.pk: s for s in sources}
            rows = []
            for source_id, arm in sorted(placed.items()):
                rows.append(
                    Assignment(
                        experiment=experiment,
                        source_id=source_id,
                        arm=arm.value,
                        stratum=units[source_id].stratum,
                        previous_version_id=overrides.get(source_id),
                        previous_fields=_fields_of(by_id[source_id]),
                    )
                )
                version = treatment if arm is Arm.TREATMENT else control
                source_version_set(source=by_id[source_id], version=version, actor=actor, experiment=experiment)
            Assignment.objects.bulk_create(rows)
    except IntegrityError as exc:
        raise StrategyError(409, "Another experiment is running; stop it first.") from exc
    _running_mark(True)
    metrics.EXPERIMENTS.labels(event="started").inc()
    log.info("experiment_started", experiment=experiment.pk, metric=metric, sources=len(placed), actor=actor)
    return experiment


def _fields_of(source: Source) -> dict[str, Any]:
    return {
        "hysteresis": source.hysteresis,
        "health": source.health,
        "poll": source.poll,
        "strategy_version_id": source.strategy_version_id,
    }


def _units(sources: list[Source], stratify: list[str]) -> dict[int, Unit]:
    streams = {row.source_id: row for row in StreamState.objects.filter(source_id__in=[s.pk for s in sources])}
    units = {}
    for source in sources:
        parts = []
        if "connector" in stratify:
            parts.append(source.connector)
        if "mode" in stratify:
            parts.append(source.mode)
        if "traffic" in stratify:
            stream = streams.get(source.pk)
            interval = stream.expected_interval_s if stream is not None else None
            parts.append(_traffic(1.0 / interval if interval else None))
        units[source.pk] = Unit(source.pk, "/".join(parts))
    return units


def _traffic(rate_per_s: float | None) -> str:
    if rate_per_s is None or rate_per_s <= 0:
        return "quiet"
    if rate_per_s < 0.1:
        return "low"
    return "medium" if rate_per_s < 10 else "high"


@transaction.atomic
def experiment_stop(*, experiment: Experiment, actor: str, reason: str) -> Experiment:
    """End it now (an operator, or a guardrail); every source goes back to what it ran before."""
    return _end(experiment, ExperimentStatus.STOPPED, actor=actor, reason=reason, promote=False)


@transaction.atomic
def experiment_promote(*, experiment: Experiment, actor: str) -> Experiment:
    """Adopt the treatment as the tenant default: only a significant winner (p < alpha), once."""
    if experiment.status != ExperimentStatus.AWAITING_APPROVAL or experiment.p_value >= experiment.alpha:
        raise StrategyError(409, "Only an experiment whose treatment won significantly can be promoted.")
    return _end(experiment, ExperimentStatus.PROMOTED, actor=actor, reason="treatment promoted", promote=True)


@transaction.atomic
def experiment_reject(*, experiment: Experiment, actor: str, reason: str) -> Experiment:
    if experiment.status not in (ExperimentStatus.AWAITING_APPROVAL, ExperimentStatus.RUNNING):
        raise StrategyError(409, f"The experiment is {experiment.status} already.")
    return _end(experiment, ExperimentStatus.REJECTED, actor=actor, reason=reason, promote=False)


def _end(experiment: Experiment, status: str, *, actor: str, reason: str, promote: bool) -> Experiment:
    now = timezone.now()
    moved = (
        Experiment.objects.filter(pk=experiment.pk, status=experiment.status)
        .exclude(status__in=ENDED)
        .update(status=status, ended_at=now, end_reason=reason, decided_by=actor, decided_at=now)
    )
    if not moved:
        raise StrategyError(409, "The experiment has ended already, or another operator changed it first.")
    if promote:
        row = TenantStrategy.objects.select_for_update().get_or_create(pk=1)[0]
        row.default_version = experiment.treatment
        row.save()
    _restore(experiment, actor=actor)
    experiment.refresh_from_db()
    _running_mark(False)
    metrics.EXPERIMENTS.labels(event=status).inc()
    log.info("experiment_ended", experiment=experiment.pk, status=status, reason=reason, actor=actor)
    return experiment


def _restore(experiment: Experiment, *, actor: str) -> None:
    """Each source back where it was: its previous override, else the tenant default (which a
    promotion has just set), else the very parameters it had (a source that followed no version)."""
    assignments = {a.source_id: a for a in experiment.assignments.all()}
    versions = StrategyVersion.objects.in_bulk(
        [a.previous_version_id for a in assignments.values() if a.previous_version_id is not None]
    )
    default = tenant_strategy().default_version
    for source in Source.objects.filter(pk__in=list(assignments)):
        assignment = assignments[source.pk]
        before = versions.get(assignment.previous_version_id) if assignment.previous_version_id else None
        if before is not None:
            source_version_set(source=source, version=before, actor=actor)
        elif default is not None or not assignment.previous_fields:
            source_version_clear(source=source, actor=actor)
        else:
            SourceStrategy.objects.filter(source=source).delete()
            source_ops.parameters_set(source, assignment.previous_fields, edit=True)


def experiment_evaluate(*, experiment: Experiment, now: datetime | None = None) -> Experiment:
    """Read the outcomes so far, check the guardrails, run the sequential test, act on it. Steps:

    1. A guardrail crossed (treatment flapping or losing records beyond the
       control by the allowance): stop at once.
    2. The outcomes in time order through the mixture SPRT (valid at every look).
    3. Significant: the treatment won -> awaiting approval (promoted at once
       when the tenant allows auto promotion); the control won -> rejected.
    """
    from strategies.selectors import guardrail_counts, samples

    if experiment.status != ExperimentStatus.RUNNING:
        return experiment
    now = now or timezone.now()
    rails = guardrail_counts(experiment)
    crossed = _crossed(experiment.guardrails, rails)
    found = samples(experiment, now=now)
    test = SequentialTest(alpha=experiment.alpha)
    for _, treatment, value in found:
        test.add(treatment=treatment, value=value)
    result = test.result()
    body = {**result.as_dict(), "samples": len(found), "guardrails": rails, "metric": experiment.metric}
    p_value = min(experiment.p_value, result.p_value)
    body["p_value"] = p_value
    Experiment.objects.filter(pk=experiment.pk, status=ExperimentStatus.RUNNING).update(
        result=body, p_value=p_value, evaluated_at=now
    )
    experiment.refresh_from_db()
    if crossed:
        metrics.GUARDRAILS.labels(guardrail=crossed.split(":")[0]).inc()
        return experiment_stop(experiment=experiment, actor="guardrail", reason=crossed)
    if p_value >= experiment.alpha:
        return experiment
    treatment_better = (result.effect > 0) == (experiment.metric in HIGHER_IS_BETTER)
    if not treatment_better:
        return experiment_reject(
            experiment=experiment, actor="experiment", reason="the control was significantly better"
        )
    Experiment.objects.filter(pk=experiment.pk, status=ExperimentStatus.RUNNING).update(
        status=ExperimentStatus.AWAITING_APPROVAL
    )
    experiment.refresh_from_db()
    log.info("experiment_significant", experiment=experiment.pk, p_value=p_value, effect=result.effect)
    if tenant_strategy().auto_promote:
        return experiment_promote(experiment=experiment, actor="auto-promotion (tenant setting)")
    return experiment


def _crossed(guardrails: Mapping[str, float], counts: Mapping[str, Any]) -> str:
    """The first guardrail crossed, as 'name: why', or ''."""
    for name, allowance in guardrails.items():
        arms = counts.get(name)
        if not arms:
            continue
        control, treatment = arms["control"], arms["treatment"]
        if treatment - control > allowance:
            return f"{name}: treatment {treatment:.2f} against control {control:.2f} (allowance {allowance:g})"
    return ""


def _running_mark(running: bool) -> None:
    """The schemas with a running experiment, so the evaluation sweep visits only those."""
    client, name = get_redis(), key(RUNNING_KEY)
    if running:
        client.sadd(name, current_schema())
    elif not Experiment.objects.filter(status=ExperimentStatus.RUNNING).exists():
        client.srem(name, current_schema())


# -- tuning from a source's own history ------------------------------------------------


def source_tune(
    *, source: Source, version: StrategyVersion, author: str, hours: float = 24.0, budget_per_hour: float | None = None
) -> tuple[dict[str, float] | None, StrategyVersion | None]:
    """Propose hysteresis parameters from the source's recorded verdicts; a new version, not adopted.

    The history is the source's health samples of the last `hours`
    (strategies.tuner.tune_verdicts). The budget defaults to the switches the
    source really made over that time, so the proposal switches no more than
    today. Returns (the changes, the version made) or (None, None).
    """
    from strategies.selectors import judged_history

    judged, switched = judged_history(source, hours=hours)
    if len(judged) < 2:
        return None, None
    span_h = max(1e-9, (judged[-1].at - judged[0].at) / 3600.0)
    budget = switched / span_h if budget_per_hour is None else budget_per_hour
    base = dict(version.params["hysteresis"])
    changes = tune_verdicts(judged, base, budget_per_hour=budget)
    if changes is None or all(base.get(k) == v for k, v in changes.items()):
        return changes, None
    created = version_create(
        config_name=version.config.name,
        params={"hysteresis": changes},
        author=author,
        reason=f"tuned from v{version.number} on source {source.pk}'s last {hours:g} h of verdicts",
        origin={"tuned_from": version.number, "source": source.pk, "budget_per_hour": budget, "changes": changes},
    )
    return changes, created


def recording_tune(
    *, recording: Mapping[str, Any], version: StrategyVersion, author: str, failure_id: int, budget: int | None = None
) -> tuple[dict[str, float] | None, dict[str, Any], StrategyVersion | None]:
    """Propose hysteresis parameters from a failure recording (observability); a new version, not adopted.

    Only when the proposal is better on the recording: less time misjudging
    the push (strategies.tuner.RecordedOutcome), or as long with fewer switches.
    """
    base = dict(version.params["hysteresis"])
    changes, report = tune_recording(recording, base, budget=budget)
    if changes is None or "after" not in report:
        return changes, report, None
    before, after = report["before"], report["after"]
    better = after["misjudged_s"] < before["misjudged_s"] or (
        after["misjudged_s"] == before["misjudged_s"] and after["switches"] < before["switches"]
    )
    if not better or all(base.get(k) == v for k, v in changes.items()):
        return changes, report, None
    created = version_create(
        config_name=version.config.name,
        params={"hysteresis": changes},
        author=author,
        reason=f"tuned from v{version.number} on the recording of failure {failure_id}",
        origin={"tuned_from": version.number, "failure": failure_id, "report": report, "changes": changes},
    )
    return changes, report, created
