"""The API's JSON shapes as TypedDicts: what the SDK's methods return.

They are plain dicts at run time (new fields the server adds are there, only
not typed here); names follow the API's fields exactly.
"""

from typing import Any, Generic, Literal, NotRequired, TypedDict, TypeVar

T = TypeVar("T")

EventType = Literal["upsert", "delete", "heartbeat"]
Mode = Literal["event", "hybrid", "polling"]


class Page(TypedDict, Generic[T]):
    """Every list endpoint: newest first, `next_cursor` for the next page (None on the last)."""

    results: list[T]
    next_cursor: str | None


class Event(TypedDict, total=False):
    """One event pushed to a source (`id` is the idempotency key; the SDK fills one when absent)."""

    id: str
    type: EventType
    key: str
    version: int
    data: dict[str, Any]
    seq: int
    occurred_at: str


class PushResult(TypedDict):
    accepted: int
    duplicates: int
    ignored: NotRequired[int]  # an upstream's own (native) webhook only


class Source(TypedDict):
    id: int
    name: str
    connector: str
    config: dict[str, Any]
    hysteresis: dict[str, Any]
    poll: dict[str, Any]
    reconcile: dict[str, Any]
    health: dict[str, Any]
    data_schema: dict[str, Any] | None
    preset: str | None
    push: dict[str, Any]
    mode: Mode
    mode_since: str
    paused: bool
    ingest_url: str
    created_at: str
    updated_at: str
    webhook_secret: NotRequired[str]  # in the creation's answer only


class SourceHealth(TypedDict, total=False):
    mode: Mode
    paused: bool
    health_score: float
    verdict: str | None
    mode_since: str
    last_event_at: str | None
    last_push_at: str | None
    last_heartbeat_at: str | None
    contiguous_seq: int | None
    highest_seq: int | None
    upstream_seq: int | None
    pending_seqs: int
    expected_interval_s: float | None
    delivery_rate: float | None
    events_total: int
    changes_total: int
    duplicates_total: int
    push_errors_total: int


class ModeSwitch(TypedDict, total=False):
    id: int
    transition: str
    actor: str | None
    from_mode: Mode
    to_mode: Mode
    reason: str
    signals: dict[str, Any]
    at: str
    validated: bool | None
    rolled_back: bool


class ReconcileRequest(TypedDict):
    run: int
    status: str
    queued: bool


class ReconciliationRun(TypedDict, total=False):
    id: int
    status: str
    started_at: str
    finished_at: str | None
    upstream_count: int
    local_count: int
    missing: int
    changed: int
    deleted: int
    corrections: int
    trigger: str
    mode: str | None
    records_fetched: int
    duration_ms: float | None


class Preset(TypedDict):
    name: str
    title: str
    connector: str
    push_scheme: str | None
    config_schema: dict[str, Any]
    docs: str
    fills: NotRequired[dict[str, Any]]  # one preset (GET /presets/{name})
    example: NotRequired[dict[str, Any] | None]


class Record(TypedDict):
    key: str
    version: int
    data: dict[str, Any]
    hash: str
    updated_at: str


class Change(TypedDict):
    seq: int
    source: int
    event_id: str
    type: Literal["upsert", "delete"]
    key: str
    version: int
    data: dict[str, Any] | None
    origin: Literal["push", "poll", "reconcile"]
    committed_at: str


class ChangesPage(TypedDict):
    results: list[Change]
    next_after: int


class Subscription(TypedDict):
    id: int
    url: str
    sources: list[int] | None
    signature: Literal["beastflow", "standard-webhooks"]
    status: str
    cursor: int
    disabled_at: str | None
    disabled_reason: str
    failures: int
    failing_since: str | None
    next_attempt_at: str | None
    breaker: str
    delivered_changes: int
    attempts_total: int
    failures_total: int
    last_success_at: str | None
    last_failure_at: str | None
    last_error: str
    created_at: str
    updated_at: str
    secret: NotRequired[str]  # in the creation's answer only


class Delivery(TypedDict):
    id: int
    subscription: int
    first_seq: int
    last_seq: int
    count: int
    attempt: int
    status: str
    http_status: int | None
    error: str
    duration_ms: float
    retry_after_s: float | None
    next_attempt_at: str | None
    created_at: str


class CallbackPayload(TypedDict):
    """The body of one callback request."""

    changes: list[Change]


class Failure(TypedDict):
    id: int
    source: int | None
    kind: str
    fingerprint: str
    occurrences: int
    first_seen: str
    last_seen: str
    detail: dict[str, Any]
    status: str
    severity: int
    priority: int
    attempts: int
    needs_operator: bool
    resolved_by: str | None


class RCAResult(TypedDict):
    id: int
    source: int | None
    failure: int
    category: str
    confidence: float
    evidence: Any
    created_at: str
    confirmed: bool
    rule: str | None
    rules_version: Any
    alternatives: Any
    learner: Any
    confirmed_category: str | None
    confirmed_by: str | None
    confirmed_at: str | None
    confirm_note: str | None
    timeline: NotRequired[list[dict[str, Any]]]  # one result (GET /rca/{id})


class HealingEvent(TypedDict):
    kind: str
    actor: str
    note: str
    at: str
    detail: dict[str, Any]


class HealingAction(TypedDict):
    id: int
    source: int | None
    rca: int | None
    strategy: str
    risk: str
    status: str
    requested_at: str
    decided_by: str | None
    decided_at: str | None
    outcome: Any
    reason: str | None
    detail: dict[str, Any]
    failure: int | None
    category: str | None
    escalation_level: int
    next_escalation_at: str | None
    verify_deadline: str | None
    events: NotRequired[list[HealingEvent]]  # one action, and the answers to approve/reject
    webhook_secret: NotRequired[str]  # approving a secret rotation: the new secret, shown once
