"""Tenant-schema models of strategy configurations, their versions and the experiments between them."""

from __future__ import annotations

from django.db import models


class StrategyConfig(models.Model):
    """A named line of strategy versions (e.g. `default`, `fast-failover`)."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class StrategyVersion(models.Model):
    """One immutable version of a config: every parameter (strategies.params.StrategyParams.stored()).

    Never updated: a change is a new version, a rollback is a new version
    equal to an old one (`restores` says which). Versions are never deleted
    while anything points at them (PROTECT), so every recorded outcome's
    `strategy_version_id` stays readable.
    """

    config = models.ForeignKey(StrategyConfig, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    params = models.JSONField()
    author = models.CharField(max_length=200)
    reason = models.TextField()
    # The version this one copies back (a rollback), if it is one.
    restores = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # The tuner's proposal or the experiment it came from, if any: {"tuned_from": ..., "proposal": ...}.
    origin = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["config", "-number"]
        constraints = [models.UniqueConstraint(fields=["config", "number"], name="one_version_number_per_config")]

    def __str__(self) -> str:
        return f"{self.config.name} v{self.number}"


class TenantStrategy(models.Model):
    """The tenant's choices: its default version, and whether experiments may promote on their own.

    One row (id 1) per tenant schema.
    """

    id = models.SmallIntegerField(primary_key=True, default=1)
    default_version = models.ForeignKey(
        StrategyVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # A significant winner is promoted without an operator's approval (still only at p < alpha).
    auto_promote = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)


class SourceStrategy(models.Model):
    """A per-source override of the tenant default (an operator's choice or an experiment's arm)."""

    source = models.OneToOneField("engines.Source", on_delete=models.CASCADE, related_name="strategy")
    version = models.ForeignKey(StrategyVersion, on_delete=models.PROTECT, related_name="source_overrides")
    assigned_by = models.CharField(max_length=200)
    assigned_at = models.DateTimeField(auto_now=True)
    # Set while the override is an experiment's arm; the experiment ends it.
    experiment = models.ForeignKey(
        "Experiment", null=True, blank=True, on_delete=models.SET_NULL, related_name="overrides"
    )

    def __str__(self) -> str:
        return f"source {self.source_id} -> {self.version}"


class Metric(models.TextChoices):
    TIME_TO_DETECT = "time_to_detect", "Time to detect an outage (s)"
    TIME_TO_EVENT = "time_to_event", "Time back to event mode (s)"
    SWITCHES_PER_HOUR = "switches_per_hour", "Switches per source-hour"
    RECORDS_LOST = "records_lost", "Records lost before reconciliation"
    HEALING_SUCCESS = "healing_success", "Healing success rate"
    UPSTREAM_REQUESTS = "upstream_requests", "Upstream requests per source-hour"


# Every metric but the healing success rate is better lower.
HIGHER_IS_BETTER = {Metric.HEALING_SUCCESS.value}


class ExperimentStatus(models.TextChoices):
    RUNNING = "running", "Running"
    # A guardrail or an operator ended it: every source is back on its version.
    STOPPED = "stopped", "Stopped"
    # Significant, the treatment won: waits for an operator's approval (or auto promotion).
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    PROMOTED = "promoted", "Promoted"
    # Significant and the control won, or an operator refused the promotion.
    REJECTED = "rejected", "Rejected"


ENDED = (ExperimentStatus.STOPPED, ExperimentStatus.PROMOTED, ExperimentStatus.REJECTED)


class Experiment(models.Model):
    """An A/B experiment: the control and the treatment version on a share of the tenant's sources.

    `result` is the sequential test's latest reading (strategies.sequential.Result.as_dict()
    plus the samples per arm and the guardrails' counts); `p_value` only ever falls.
    """

    name = models.CharField(max_length=200)
    status = models.CharField(max_length=24, choices=ExperimentStatus.choices, default=ExperimentStatus.RUNNING)
    control = models.ForeignKey(StrategyVersion, on_delete=models.PROTECT, related_name="+")
    treatment = models.ForeignKey(StrategyVersion, on_delete=models.PROTECT, related_name="+")
    metric = models.CharField(max_length=32, choices=Metric.choices)
    coverage = models.FloatField(default=1.0)
    share = models.FloatField(default=0.5)
    salt = models.CharField(max_length=64)
    stratify_by = models.JSONField(default=list)
    # Per-source-hour metrics are measured over buckets of this length.
    bucket_s = models.FloatField(default=3600.0)
    guardrails = models.JSONField(default=dict)
    alpha = models.FloatField(default=0.05)
    started_by = models.CharField(max_length=200)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.TextField(blank=True, default="")
    result = models.JSONField(default=dict, blank=True)
    p_value = models.FloatField(default=1.0)
    evaluated_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=200, blank=True, default="")
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "-id"], name="experiment_status")]
        constraints = [
            # A source takes part in one experiment at a time: one running experiment per tenant keeps it simple.
            models.UniqueConstraint(
                fields=["status"], condition=models.Q(status="running"), name="one_running_experiment"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class Assignment(models.Model):
    """Which arm a source is in, and what it ran before, so that ending the experiment restores it."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="assignments")
    source = models.ForeignKey("engines.Source", on_delete=models.CASCADE, related_name="+")
    arm = models.CharField(max_length=16)
    stratum = models.CharField(max_length=200, blank=True, default="")
    # The source's override before the experiment (None: it followed the tenant default).
    previous_version_id = models.BigIntegerField(null=True, blank=True)
    # Its adaptive fields before the experiment, given back when it followed no version at all.
    previous_fields = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["experiment", "source"]
        constraints = [models.UniqueConstraint(fields=["experiment", "source"], name="one_assignment_per_source")]
