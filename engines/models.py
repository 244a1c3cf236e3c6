"""Tenant-schema models of the data flow."""

from __future__ import annotations

from django.contrib.postgres.indexes import BrinIndex
from django.db import models

from engines.modes import Mode


class ModeChoices(models.TextChoices):
    EVENT = Mode.EVENT.value, "Event (push)"
    HYBRID = Mode.HYBRID.value, "Hybrid"
    POLLING = Mode.POLLING.value, "Polling"


class Source(models.Model):
    # The id comes from a public-schema SourceRoute, so it is unique across
    # tenants and a signed webhook without an API key finds its tenant.
    id = models.BigIntegerField(primary_key=True)
    name = models.CharField(max_length=200, unique=True)
    connector = models.CharField(max_length=32)
    config = models.JSONField(default=dict)
    hysteresis = models.JSONField(default=dict)
    poll = models.JSONField(default=dict)
    reconcile = models.JSONField(default=dict)
    health = models.JSONField(default=dict)
    data_schema = models.JSONField(null=True, blank=True)
    # The preset it was made from, if any (engines/connectors/presets); informational.
    preset = models.CharField(max_length=64, blank=True, default="")
    # How pushes are verified and read (engines.schemas.PushConfig.stored(): scheme, tolerance, mapping).
    push = models.JSONField(default=dict, blank=True)
    # The upstream's own webhook secret for native schemes, encrypted; write-only in the API.
    push_secret_encrypted = models.TextField(blank=True, default="", editable=False)
    mode = models.CharField(max_length=16, choices=ModeChoices.choices, default=ModeChoices.EVENT)
    mode_since = models.DateTimeField(auto_now_add=True)
    paused = models.BooleanField(default=False)
    # When it was last resumed: the monitor left it alone while paused, so its
    # silence is judged from here at the earliest, as from creation for a new source.
    resumed_at = models.DateTimeField(null=True, blank=True)
    webhook_secret_encrypted = models.TextField(editable=False)
    # The HysteresisManager's memory (engines/hysteresis.HysteresisState.to_dict).
    hysteresis_state = models.JSONField(default=dict, blank=True)
    # The PollingEngine's memory (engines/polling_policy.PollState.to_dict).
    poll_state = models.JSONField(default=dict, blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # One poll per source at a time: a worker owns the source until then.
    poll_lease_until = models.DateTimeField(null=True, blank=True)
    health_score = models.SmallIntegerField(null=True, blank=True)
    verdict = models.CharField(max_length=8, blank=True, default="")
    # The strategy version whose parameters `hysteresis`, `health` and `poll`
    # hold (strategies/). A plain column, not a ForeignKey: engines sit below
    # strategies and must not depend on its tables. Copied onto the switches
    # and polls it decides, so every outcome names the version behind it.
    strategy_version_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.pk})"

    @property
    def push_expected(self) -> bool:
        """False for an upstream that sends no webhooks: polled only, its silence never judged (`push.expected`)."""
        return (self.push or {}).get("expected", True) is not False


def _bulk_source() -> models.ForeignKey[Source]:
    """The source column of the bulk tables (events, records, changes).

    Written by the commit path in bulk and removed with the source by one
    statement per table (engines.sources.source_delete), so no database
    constraint or ORM cascade; and no index of its own: each table's
    (source, ...) index leads with it, and every extra index is one more
    write per event on the ingest path.
    """
    return models.ForeignKey(Source, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False, db_index=False)


class Origin(models.TextChoices):
    PUSH = "push", "Push"
    POLL = "poll", "Poll"
    RECONCILE = "reconcile", "Reconcile"


class EventType(models.TextChoices):
    UPSERT = "upsert", "Upsert"
    DELETE = "delete", "Delete"
    HEARTBEAT = "heartbeat", "Heartbeat"


# Event, Record and Change rows are many: they reference their source without
# a database constraint or ORM cascade, and source_delete removes them with
# one DELETE per table instead of loading them into Python.


class Event(models.Model):
    """Every upsert/delete event received, once per (source, upstream id).

    Written by the commit path with one INSERT ... ON CONFLICT DO NOTHING per
    batch (engines/ingest/commit.py), never with save(). Heartbeats only
    update StreamState. Keyed by (source, event id) itself: a surrogate id
    would cost one more index write per event and serve nothing.
    """

    pk = models.CompositePrimaryKey("source_id", "event_id")

    source = _bulk_source()
    event_id = models.CharField(max_length=255)
    type = models.CharField(max_length=16, choices=EventType.choices)
    key = models.CharField(max_length=512)
    version = models.BigIntegerField()
    upstream_seq = models.BigIntegerField(null=True)
    data = models.JSONField(null=True)
    origin = models.CharField(max_length=16, choices=Origin.choices)
    occurred_at = models.DateTimeField(null=True)
    received_at = models.DateTimeField()

    class Meta:
        indexes = [
            # For "what did polls find that push missed" (the monitor's validation).
            # Partial, so the push hot path never maintains it.
            models.Index(
                fields=["source", "received_at"], name="event_polled_received", condition=~models.Q(origin="push")
            ),
            # Retention finds old events by it (engines/partitions.py). A BRIN
            # index keeps one summary per 128 pages, so an insert almost never
            # writes to it, where a B-tree would take one more entry per event
            # (docs/scaling.md: why the event log is not partitioned).
            BrinIndex(fields=["received_at"], name="event_received_brin", autosummarize=True),
        ]


class Record(models.Model):
    """The current state of each key: the newest version wins; deletes are tombstones.

    Keeps its surrogate id, unlike Event: the records API pages by it, a
    stable order while records change under a reader.
    """

    source = _bulk_source()
    key = models.CharField(max_length=512)
    version = models.BigIntegerField()
    data = models.JSONField(null=True)
    hash = models.CharField(max_length=64)
    deleted = models.BooleanField(default=False)
    change_seq = models.BigIntegerField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["source", "key"]
        constraints = [models.UniqueConstraint(fields=["source", "key"], name="record_once_per_key")]


class Change(models.Model):
    """A record state transition, numbered in commit order per tenant (`seq`).

    Seqs come from SeqCounter under its row lock, held until commit, so a
    reader paging with `seq > after` never misses a change committed later.

    The table is partitioned by `committed_at`, a week a partition (migration
    0009; engines/partitioning.py), so its primary key in the database is
    (seq, committed_at); `seq` stays unique by construction. Retention drops
    whole partitions and raises SeqCounter.floor.
    """

    seq = models.BigIntegerField(primary_key=True)
    source = _bulk_source()
    event_id = models.CharField(max_length=255)
    type = models.CharField(max_length=16, choices=EventType.choices)
    key = models.CharField(max_length=512)
    version = models.BigIntegerField()
    data = models.JSONField(null=True)
    origin = models.CharField(max_length=16, choices=Origin.choices)
    committed_at = models.DateTimeField()

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["source", "seq"], name="change_source_seq")]


class SeqCounter(models.Model):
    """One row per tenant schema: the last change seq handed out, and the retention floor.

    Every change with floor < seq <= last is kept; those at or below the
    floor may have been dropped by retention, so a resume from before it is
    answered 410 (docs/scaling.md).
    """

    id = models.SmallIntegerField(primary_key=True, default=1)
    last = models.BigIntegerField(default=0)
    floor = models.BigIntegerField(default=0)


class StreamState(models.Model):
    """A source's stream signals, kept by the commit path for the monitor."""

    source = models.OneToOneField(Source, on_delete=models.CASCADE, primary_key=True, related_name="stream")
    last_event_at = models.DateTimeField(null=True)
    last_push_at = models.DateTimeField(null=True)
    last_heartbeat_at = models.DateTimeField(null=True)
    # Every seq <= contiguous_seq has been seen; seqs above it that arrived
    # early wait in pending_seqs until the gap before them fills.
    contiguous_seq = models.BigIntegerField(null=True)
    highest_seq = models.BigIntegerField(null=True)
    upstream_seq = models.BigIntegerField(null=True)
    pending_seqs = models.JSONField(default=list)
    events_total = models.BigIntegerField(default=0)
    changes_total = models.BigIntegerField(default=0)
    duplicates_total = models.BigIntegerField(default=0)
    push_errors_total = models.BigIntegerField(default=0)
    expected_interval_s = models.FloatField(null=True)
    # What the latest poll found that push had missed (records it committed
    # as changes, past the grace a push in flight gets): the signal of a
    # stream without seqs, as gaps are for one with seqs (docs/contract.md §8.3).
    polled_missed = models.IntegerField(default=0)
    polled_missed_at = models.DateTimeField(null=True)
    last_audit_at = models.DateTimeField(null=True)
    updated_at = models.DateTimeField(auto_now=True)


class ModeSwitch(models.Model):
    """The audit row of one mode switch, with the signals that caused it."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="mode_switches")
    from_mode = models.CharField(max_length=16, choices=ModeChoices.choices)
    to_mode = models.CharField(max_length=16, choices=ModeChoices.choices)
    transition = models.CharField(max_length=16)
    reason = models.TextField()
    signals = models.JSONField(default=dict)
    at = models.DateTimeField(db_index=True)
    # Filled in after the fact: did the switch help? (None = not judged yet)
    validated = models.BooleanField(null=True)
    rolled_back = models.BooleanField(default=False)
    actor = models.CharField(max_length=150, blank=True, default="", help_text="Empty for the monitor.")
    correlation_id = models.CharField(max_length=128, blank=True, default="")
    # The strategy version the source ran under when it switched (Source.strategy_version_id).
    strategy_version_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.from_mode}->{self.to_mode} @ {self.at:%Y-%m-%d %H:%M:%S}"


class HealthSample(models.Model):
    """One StreamMonitor evaluation, kept for charts for a retention period.

    Partitioned by `at`, a day a partition (migration 0009): retention drops
    whole days. The database's primary key is (id, at).
    """

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="health_samples")
    at = models.DateTimeField()
    score = models.SmallIntegerField()
    verdict = models.CharField(max_length=8)
    mode = models.CharField(max_length=16, choices=ModeChoices.choices)
    delivery_rate = models.FloatField(null=True)
    measures = models.JSONField(default=dict)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["source", "-at"], name="health_source_at")]

    def __str__(self) -> str:
        return f"{self.score} {self.verdict} @ {self.at:%H:%M:%S}"


class PollTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Scheduled"
    GAP_FILL = "gap_fill", "Gap fill"
    MANUAL = "manual", "Manual"
    # In event mode, a source without upstream seqs is checked by a poll (docs/contract.md §8.3).
    AUDIT = "audit", "Audit"


class PollStatus(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class PollRun(models.Model):
    """One poll of a source's change feed: what it asked, what it found."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="poll_runs")
    trigger = models.CharField(max_length=16, choices=PollTrigger.choices)
    status = models.CharField(max_length=16, choices=PollStatus.choices)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True)
    from_seq = models.BigIntegerField(null=True)
    to_seq = models.BigIntegerField(null=True)
    pages = models.PositiveIntegerField(default=0)
    events = models.PositiveIntegerField(default=0)
    # Events the poll brought that push had not delivered: what push missed.
    new_events = models.PositiveIntegerField(default=0)
    changes = models.PositiveIntegerField(default=0)
    caught_up = models.BooleanField(default=False)
    # Records the poll committed that push had missed (beyond the grace a push in flight gets).
    missed = models.PositiveIntegerField(default=0)
    # Connector-specific facts: the watermark asked from and reached, 304s, rate-limit waits, missed keys.
    details = models.JSONField(default=dict, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True)
    error_kind = models.CharField(max_length=32, blank=True, default="")
    error = models.TextField(blank=True, default="")
    next_interval_s = models.FloatField(null=True)
    # The strategy version whose poll policy scheduled it (Source.strategy_version_id).
    strategy_version_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["source", "-started_at"], name="pollrun_source_started")]

    def __str__(self) -> str:
        return f"poll {self.status} ({self.new_events} new)"


class ReconcileTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Scheduled"
    MANUAL = "manual", "Manual"


class ReconcileStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    # Held by the safety cap: nothing applied until an operator approves.
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"


class ReconcileMode(models.TextChoices):
    DIGEST = "digest", "Bucket digests"
    FULL = "full", "Full snapshot"


class ReconciliationRun(models.Model):
    """One reconciliation of a source against its upstream snapshot (engines/reconcile).

    The row is the run's lease: at most one `running` row per source (a
    partial unique index), created before the task is queued. A held run
    (`awaiting_approval`) becomes `running` again when its healing action is
    approved, and then makes a fresh diff.
    """

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="reconciliations")
    trigger = models.CharField(max_length=16, choices=ReconcileTrigger.choices)
    status = models.CharField(max_length=24, choices=ReconcileStatus.choices, default=ReconcileStatus.RUNNING)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    # Set by the task that executes the run (compare-and-set: a redelivered
    # task finds it taken); refreshed while it works, so a run whose worker
    # died is recognised as abandoned and another can start.
    claimed_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField()
    mode = models.CharField(max_length=16, choices=ReconcileMode.choices, blank=True, default="")
    upstream_count = models.BigIntegerField(default=0)
    local_count = models.BigIntegerField(default=0)
    missing = models.BigIntegerField(default=0)
    changed = models.BigIntegerField(default=0)
    deleted = models.BigIntegerField(default=0)
    # Changes the run committed (less than missing + changed + deleted when a
    # push overtook a correction between the diff and the commit).
    corrections = models.BigIntegerField(default=0)
    # Local versions newer than the snapshot: changes on their way, left alone.
    in_flight = models.BigIntegerField(default=0)
    # Same version, different data: cannot be ordered, so reported, not corrected.
    conflicts = models.BigIntegerField(default=0)
    digest_root = models.CharField(max_length=64, blank=True, default="")
    local_digest_root = models.CharField(max_length=64, blank=True, default="")
    buckets_differing = models.IntegerField(null=True, blank=True)
    pages_fetched = models.IntegerField(default=0)
    records_fetched = models.BigIntegerField(default=0)
    duration_ms = models.FloatField(null=True, blank=True)
    # The cap this run was held to (None: no cap, e.g. nothing local to protect).
    max_change_ratio = models.FloatField(null=True, blank=True)
    # Set when an operator approved a held diff: the share approved, and
    # whether what was approved was an empty snapshot.
    approved_ratio = models.FloatField(null=True, blank=True)
    approved_empty = models.BooleanField(default=False)
    # The healing action whose approval re-ran this run. A plain column: a
    # ForeignKey would make engines and healing migrations depend on each other.
    healing_action_id = models.BigIntegerField(null=True, blank=True)
    error_kind = models.CharField(max_length=32, blank=True, default="")
    error = models.TextField(blank=True, default="")
    # Bounded samples of the keys found per kind of drift.
    samples = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source"],
                condition=models.Q(status="running"),
                name="one_running_reconciliation_per_source",
            )
        ]
        indexes = [models.Index(fields=["source", "-id"], name="reconcile_source_id")]

    def __str__(self) -> str:
        return f"reconcile {self.status} ({self.corrections} corrections)"
